"""End to end, as a user sees it: `rsp-probe entropy` against a plain transformers script.

On a random ~100M-parameter Qwen2 (benchmarks/sampler.py's shapes), whole processes with
imports and model loading, interleaved `--repeats` times, medians:
  ours:  rsp-probe entropy --rsp-tokens 8 --n-prompts 16 --samples 2 --temperature 0
         --max-new-tokens 64 (k = 0 and 8; every probe; --backend as given)
  plain: a script that loads the checkpoint with transformers (sdpa), rebuilds the same
         inputs (prompt tokens and RSP vectors, read from our run directory) and calls
         generate(inputs_embeds=...) in batches of 32, greedy, 64 new tokens at most.
Tokens are what each side generated up to EOS; rates are tokens per second of wall time and
of CPU time (the machine is shared: CPU time is the steadier of the two).

    python benchmarks/end_to_end.py            # ends with ratio_end_to_end=.. (wall) ..
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sampler import CORPUS, SIZES

OURS = ("from rsp_probe.cli import main; import sys; sys.exit(main(sys.argv[1:]))",)
PLAIN = '''
import json, sys, torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
model_dir, run_dir = sys.argv[1:3]
model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa").eval()
table = model.get_input_embeddings().weight
records = [json.loads(line) for line in open(f"{run_dir}/trajectories.jsonl")]
vectors = load_file(f"{run_dir}/rsp.safetensors")
rows = []
for r in records:
    ids = list(r["prompt_token_ids"])
    for p in r["rsp_positions"]:
        ids.insert(p, -1)
    embeds = table[torch.tensor([max(i, 0) for i in ids])].clone()
    if r["rsp_positions"]:
        embeds[r["rsp_positions"]] = vectors[r["id"]].to(embeds.dtype)
    rows.append(embeds)
rows.sort(key=len)
eos, total = model.config.eos_token_id, 0
with torch.inference_mode():
    for start in range(0, len(rows), 32):
        batch = rows[start:start + 32]
        width = max(len(e) for e in batch)
        embeds = torch.zeros(len(batch), width, table.shape[1])
        mask = torch.zeros(len(batch), width, dtype=torch.long)
        for i, e in enumerate(batch):
            embeds[i, width - len(e):], mask[i, width - len(e):] = e, 1
        out = model.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=64,
                             do_sample=False, pad_token_id=eos)
        for row in out.tolist():
            total += row.index(eos) + 1 if eos in row else len(row)
print(total)
'''


def timed(command: list[str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the child, stdout) of one whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def generated_tokens(run_dir: Path) -> int:
    with open(run_dir / "trajectories.jsonl") as handle:
        return sum(json.loads(line)["n_steps"] for line in handle)


def run_ours(model_dir: Path, run_dir: Path, backend: str) -> tuple[float, float, int]:
    """(wall s, CPU s, generated tokens) of the `rsp-probe entropy` command above."""
    wall, cpu, _ = timed([sys.executable, "-c", *OURS, "entropy", "--model", str(model_dir),
                          "--backend", backend, "--rsp-tokens", "8", "--n-prompts", "16",
                          "--samples", "2", "--temperature", "0", "--max-new-tokens", "64",
                          "--out", str(run_dir), "--quiet"])
    return wall, cpu, generated_tokens(run_dir)


def parse_args(doc: str, argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--size", default="100M", choices=list(SIZES))
    return parser.parse_args(argv)


def random_checkpoint(root: Path, size: str) -> Path:
    """A random Qwen2 of benchmarks/sampler.py's `size`, with the benchmark's tokenizer."""
    from rsp_probe.toy.checkpoint import save_random_checkpoint
    from rsp_probe.toy.tokenizer import train_tokenizer

    train_tokenizer(CORPUS, vocab_size=512, out_dir=root / "tokenizer")
    return save_random_checkpoint(root / "model", SIZES[size], root / "tokenizer")


def new_rates(other: str) -> dict[str, dict[str, list[float]]]:
    """{side: {clock: tokens per second of each round}} for ours and the other side."""
    return {side: {"wall": [], "cpu": []} for side in ("ours", other)}


def add_rates(rates: dict[str, list[float]], tokens: int, wall: float, cpu: float) -> None:
    rates["wall"].append(tokens / wall)
    rates["cpu"].append(tokens / cpu)


def print_ratios(rates: dict, other: str, name: str) -> None:
    """The threads used and the last line: median tokens/s of ours over the other side's."""
    ratio = {clock: statistics.median(rates["ours"][clock]) /
             statistics.median(rates[other][clock]) for clock in ("wall", "cpu")}
    print(f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(f"{name}={ratio['wall']:.3f} (wall) {name}_cpu={ratio['cpu']:.3f}")


def our_rounds(args: argparse.Namespace):
    """In a temporary directory with one random checkpoint, per round: (round number, the
    directory, the checkpoint, our run directory, (wall s, CPU s, tokens) of our command).
    The other side runs next, before the following round: the two alternate."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir = random_checkpoint(root, args.size)
        for repeat in range(1, args.repeats + 1):  # the checkpoint was just written: cached
            run_dir = root / f"run{repeat}"
            yield repeat, root, model_dir, run_dir, run_ours(model_dir, run_dir, args.backend)


def main(argv=None) -> int:
    args = parse_args(__doc__, argv)
    rates = new_rates("plain")
    for repeat, _, model_dir, run_dir, (wall, cpu, ours) in our_rounds(args):
        plain_wall, plain_cpu, out = timed([sys.executable, "-c", PLAIN, str(model_dir),
                                            str(run_dir)])
        plain = int(out.split()[-1])
        print(f"round {repeat}: ours {ours} tokens in {wall:.1f} s ({cpu:.1f} s CPU), "
              f"plain {plain} tokens in {plain_wall:.1f} s ({plain_cpu:.1f} s CPU)",
              flush=True)
        add_rates(rates["ours"], ours, wall, cpu)
        add_rates(rates["plain"], plain, plain_wall, plain_cpu)
    print_ratios(rates, "plain", "ratio_end_to_end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
