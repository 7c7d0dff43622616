"""The paper plan at a small --limit on a GPU: the dry run's estimate against the measured
wall time, generated tokens per second, and any out-of-memory halvings; the numbers are
appended to benchmarks/RESULTS.md (benchmarks/gpu.sh calls this).

    python benchmarks/paper_plan.py --limit 2 --max-new-tokens 256       # random 0.5B Qwen2
    python benchmarks/paper_plan.py --model Qwen/Qwen2.5-Math-1.5B --dataset openai/gsm8k

Without --model it builds a random Qwen2 of Qwen2.5-0.5B shape (benchmarks/sampler.py):
its chains are noise and its timings are those of the shape, not of a trained model.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from rsp_probe.experiments.paper import (  # noqa: E402
    PaperSetting,
    describe_plan,
    measure_step,
    paper_plan,
    plan_sizes,
)
from rsp_probe.experiments.reproduce import run_plan  # noqa: E402
from rsp_probe.models import load_model  # noqa: E402


class _Count(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.halvings = 0

    def emit(self, record):
        self.halvings += "out of memory" in record.getMessage()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint or cached Hub id (default: random 0.5B)")
    parser.add_argument("--dataset", help="cached Hub id or file (default: arithmetic task)")
    parser.add_argument("--limit", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--results", default="benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as root:
        spec = args.model or _random_model(Path(root))
        setting = PaperSetting(args.dataset, "test", args.limit, args.max_new_tokens,
                               args.batch_size)
        plan = paper_plan(setting)
        sizes = plan_sizes(plan, spec)
        model = load_model(spec, backend="auto")
        steps: dict = {}
        prompt = round(sizes[0]["mean_prompt"])
        estimate = describe_plan(sizes, lambda b: steps.setdefault(b, measure_step(model, prompt,
                                                                                   b)))
        counter = _Count()
        logging.getLogger("rsp_probe").addHandler(counter)
        start = time.perf_counter()
        runs = run_plan(Path(root) / "runs", model=model, model_spec=spec, quiet=True,
                        plan=plan)
        torch.cuda.synchronize() if model.device.type == "cuda" else None
        seconds = time.perf_counter() - start
        generated = sum(len(ids) for run in runs
                        for ids in run.trajectories["generated_token_ids"])
        section = _section(args, model, spec, estimate, seconds, generated, counter.halvings)
    print(section)
    with open(args.results, "a", encoding="utf-8") as handle:
        handle.write("\n" + section)
    return 0


def _random_model(root: Path) -> str:
    from sampler import build  # benchmarks/sampler.py

    _, path = build("0.5B", root, "cpu", "float32")
    return str(path)


def _section(args, model, spec, estimate, seconds, generated, halvings) -> str:
    device = torch.cuda.get_device_name() if model.device.type == "cuda" else "CPU"
    name = spec if args.model else "random Qwen2, Qwen2.5-0.5B shape"
    return (f"## The paper plan at --limit {args.limit} ({time.strftime('%Y-%m-%d')})\n\n"
            f"`python benchmarks/paper_plan.py --limit {args.limit} --max-new-tokens "
            f"{args.max_new_tokens} --batch-size {args.batch_size}` on {device}, {name}, "
            f"{model.name} backend, {model.info.dtype}, torch {torch.__version__}.\n\n"
            f"Dry-run estimate:\n\n```\n{estimate}\n```\n\n"
            f"Measured: {seconds:.0f} s wall for {generated:,} generated tokens "
            f"({generated / seconds:,.0f} tokens/s over the whole plan, writing runs "
            f"included); out-of-memory halvings: {halvings}.\n")


if __name__ == "__main__":
    sys.exit(main())
