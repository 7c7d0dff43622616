"""The paper-scale plan: `rsp-probe reproduce --plan paper --model M --dataset D`.

Fixed here before any result is seen, like the default plan (reproduce.PLAN), and sized for
reasoning models on real benchmarks: chains up to the user's --max-new-tokens (the paper's
run 1,000-4,000 tokens), Pass@N with N = 64 samples, and the RSP doses of the default plan.
The user chooses the model, the dataset (a cached Hub id or a local file; the built-in
arithmetic task when none), its split, --limit problems and the chain length; nothing else.

`describe_plan` is the dry run: every run's size (trajectories, token positions) and a time
from one measured decode step of the loaded model at the run's batch size.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

PAPER_N = 64  # samples per problem for Pass@N, the paper's largest N
PAPER_K = (1, 2, 4, 8, 16, 32, 64)
PAPER_DOSES = (4, 16)
PAPER_TEMPERATURE = 0.6  # the sampling temperature reasoning models are evaluated at
DEFAULT_MAX_NEW_TOKENS = 2048
DEFAULT_LIMIT = 100


@dataclass(frozen=True)
class PaperSetting:
    dataset: str | None = None
    split: str = "test"
    limit: int = DEFAULT_LIMIT
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    batch_size: int = 32


def add_paper_options(parser) -> None:
    """`rsp-probe reproduce`'s options for this plan (argparse; no heavy import)."""
    paper = parser.add_argument_group("the paper's setting (rsp_probe/experiments/paper.py)")
    paper.add_argument("--plan", choices=("default", "paper"), default="default",
                       help="default: the default model's plan; paper: reasoning chains, "
                       "Pass@64 on --dataset (%(default)s)")
    paper.add_argument("--dataset", help="Hub id in the local cache or a local file")
    paper.add_argument("--split", default="test", help="dataset split (%(default)s)")
    paper.add_argument("--limit", type=int, help="problems (paper plan default: 100)")
    paper.add_argument("--max-new-tokens", type=int, default=2048,
                       help="longest chain (%(default)s)")
    paper.add_argument("--batch-size", type=int, default=32, help="trajectories decoded "
                       "together; halved on a CUDA out-of-memory error (%(default)s)")
    paper.add_argument("--dry-run", action="store_true",
                       help="print the plan, its size and a measured time; run nothing")


def paper_plan(setting: PaperSetting) -> tuple[tuple[str, str, dict], ...]:
    """(run name, command, options) of every run; reproduce.run_plan runs them."""
    from rsp_probe.errors import UsageError

    if setting.limit < 1:
        raise UsageError(f"--limit must be >= 1, got {setting.limit}")
    if setting.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {setting.batch_size}")
    if setting.max_new_tokens < 1:
        raise UsageError(f"--max-new-tokens must be >= 1, got {setting.max_new_tokens}")
    data = dict(n_prompts=setting.limit, max_new_tokens=setting.max_new_tokens,
                batch_size=setting.batch_size, temperature=PAPER_TEMPERATURE)
    if setting.dataset is not None:
        data.update(dataset=setting.dataset, split=setting.split)
    passk = dict(data, samples=PAPER_N, pass_k=PAPER_K)
    return (
        ("entropy", "entropy", dict(data, rsp_tokens=(0, *PAPER_DOSES), samples=4)),
        ("attention", "attention", dict(data, rsp_tokens=PAPER_DOSES, samples=2)),
        ("branching", "branching", dict(data, rsp_tokens=(PAPER_DOSES[-1],), samples=8,
                                        temperature=1.0)),
        *((f"passk-k{k}", "passk", dict(passk, rsp_tokens=(k,))) for k in PAPER_DOSES),
    )


def plan_sizes(plan, model_spec: str | None) -> list[dict]:
    """Per run: trajectories, and the most token positions it decodes (prompt + RSP +
    max_new_tokens per trajectory); the problems are loaded, the model is not."""
    from rsp_probe.experiments.base import get_experiment
    from rsp_probe.experiments.common import load_problems
    from rsp_probe.models import load_tokenizer, resolve_model_path
    from rsp_probe.tasks.prompts import encode_problem, prompt_format

    sizes = []
    tokenizer = None
    for name, command, options in plan:
        spec = get_experiment(command).spec(model_spec, **options)
        if tokenizer is None:
            path, _, _ = resolve_model_path(spec.model.model, spec.model.revision)
            tokenizer = load_tokenizer(path, spec.model.trust_remote_code)
        fmt = prompt_format(tokenizer, spec.data)
        problems = load_problems(spec.data)
        prompt = sum(len(encode_problem(tokenizer, p, fmt).token_ids) for p in problems)
        conditions = _conditions(command, spec)
        samples = [c.n_samples(spec.sampling.samples) for c in conditions]
        rsp = sum(n * c.rsp_tokens for n, c in zip(samples, conditions))
        trajectories = len(problems) * sum(samples)
        new_tokens = trajectories * spec.sampling.max_new_tokens
        sizes.append(dict(name=name, command=command, trajectories=trajectories,
                          new_tokens=new_tokens,
                          positions=sum(samples) * prompt + len(problems) * rsp + new_tokens,
                          max_new_tokens=spec.sampling.max_new_tokens,
                          batch_size=spec.sampling.batch_size,
                          mean_prompt=prompt / len(problems)))
    return sizes


def _conditions(command: str, spec):
    from rsp_probe.experiments.attention import rsp_conditions
    from rsp_probe.experiments.common import conditions_by_k, named_conditions

    if command == "entropy":
        return conditions_by_k(spec)
    if command == "attention":
        return rsp_conditions(spec)
    return named_conditions(tuple(spec.option("conditions")), spec)


def measure_step(model, prompt_tokens: int, batch: int, k: int = 16,
                 steps: tuple[int, int] = (2, 6)) -> tuple[float, float]:
    """(prefill seconds, seconds per decode step) of `batch` trajectories of a
    `prompt_tokens`-token prompt plus k RSP positions, timed with the sampler itself: the
    difference of two short generations over their difference in steps."""
    import torch

    from rsp_probe.rsp import draw_rsp, fit_law
    from rsp_probe.sampler import Job, generate

    law = fit_law(model.embedding_table.float())
    ids = ([1] * max(prompt_tokens, 1)) + [-1] * k
    jobs = [Job(f"m{i}", ids, list(range(len(ids) - k, len(ids))), draw_rsp(law, k, seed=i),
                1.0, 1.0, seed=i) for i in range(batch)]
    timings = []
    for n in (1, *steps):
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        generate(model, jobs, max_new_tokens=n, batch_size=batch, stop_strings=())
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        timings.append(time.perf_counter() - start)
    _warmup, short, long = timings
    step = max((long - short) / (steps[1] - steps[0]), 0.0)
    return max(short - steps[0] * step, 0.0), step


def describe_plan(sizes: list[dict], step_of_batch) -> str:
    """The dry run's text; step_of_batch(batch) -> (prefill s, step s) measured once per
    batch size. A step at the prompt's context: longer chains attend to more keys, so the
    estimate is a lower bound that grows with --max-new-tokens."""
    lines = [f"{'run':<14}{'trajectories':>13}{'new tokens':>14}{'positions':>14}{'time':>10}"]
    total_s = total_tokens = 0
    for size in sizes:
        batch = min(size["batch_size"], size["trajectories"])
        prefill, step = step_of_batch(batch)
        batches = math.ceil(size["trajectories"] / batch)
        seconds = batches * (prefill + size["max_new_tokens"] * step)
        total_s += seconds
        total_tokens += size["positions"]
        lines.append(f"{size['name']:<14}{size['trajectories']:>13,}{size['new_tokens']:>14,}"
                     f"{size['positions']:>14,}{_duration(seconds):>10}")
    lines.append(f"total: {total_tokens:,} token positions, about {_duration(total_s)} "
                 "(from one measured decode step per batch size at the prompt's length; "
                 "longer contexts are slower, so read it as a lower bound)")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def run_paper(args) -> int:
    """`rsp-probe reproduce --plan paper`: the dry run, or every run, its figures and text."""
    import sys
    from pathlib import Path

    from rsp_probe.models import load_model

    limit = DEFAULT_LIMIT if args.limit is None else args.limit
    setting = PaperSetting(args.dataset, args.split, limit,
                           args.max_new_tokens, args.batch_size)
    plan = paper_plan(setting)
    sizes = plan_sizes(plan, args.model)  # the dataset and prompts, before the slow load
    model = load_model(args.model, backend="auto")
    if args.dry_run:
        print(f"paper plan: {model.info.name} ({model.name} backend, {model.info.device}, "
              f"{model.info.dtype}) on {setting.dataset or 'the built-in arithmetic task'} "
              f"[{setting.split}], {setting.limit} problems, chains up to "
              f"{setting.max_new_tokens} tokens, Pass@{PAPER_N}")
        prompt = round(sizes[0]["mean_prompt"])
        steps: dict[int, tuple[float, float]] = {}
        print(describe_plan(sizes, lambda b: steps.setdefault(b, measure_step(model, prompt, b))))
        return 0
    out = Path(args.out or "runs/paper")
    return _run(out, Path(args.figures or out / "figures"), plan, model, args,
                lambda line: print(line, file=sys.stderr))


def _run(out, figures_dir, plan, model, args, report) -> int:
    from rsp_probe.experiments.reproduce import RESULTS_FILE, results_text, run_plan
    from rsp_probe.figures.render import render_all

    runs = run_plan(out, model=model, model_spec=args.model, quiet=args.quiet,
                    overwrite=args.overwrite, plan=plan, report=report)
    figures = render_all([run.path for run in runs], figures_dir)
    (out / RESULTS_FILE).write_text(f"# Results of `rsp-probe reproduce --plan paper`\n\n"
                                    f"{results_text(runs)}")
    for message in figures["skipped"].values():
        report(message)
    print(f"runs in {out}, figures in {figures_dir}, summary in {out / RESULTS_FILE}")
    return 0
