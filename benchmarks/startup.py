"""Startup, as a user meets it: whole `rsp-probe` processes, imports and model load included.

Each command runs `--repeats` times in an interleaved rotation (every command once, then
again), and the table gives medians and ranges of wall time and of CPU time (user + sys of
the child process; the machine is shared, and CPU time is the steadier of the two):

  python:  python -c pass                      the interpreter alone
  pandas:  import pandas, pyarrow.parquet      what `show` pays first (it reads tables)
  torch:   python -c "import torch"
  models:  import torch and transformers' modeling and tokenizer code: what any command
           that loads a model pays first (transformers 5 imports torch._dynamo with it)
  help:    rsp-probe --help
  show:    rsp-probe show RUN                  target: 0.8 s
  run:     rsp-probe entropy --n-prompts 1 --samples 1 --max-new-tokens 1 --quiet
           (the embedded default model)        target: 4 s

With --against DIR (the source tree of another version, e.g. made by
`git archive COMMIT | tar -x -C DIR`) the rsp-probe commands also run from DIR in the same
rotation, and the table gives this tree's time over DIR's.

    python benchmarks/startup.py --repeats 5 --against /tmp/rsp-probe-before
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = "from rsp_probe.cli import main; import sys; sys.exit(main(sys.argv[1:]))"
TARGETS = {"show": 0.8, "run": 4.0}
FLOORS = ("python", "pandas", "torch", "models")  # imports every version pays


def commands(run: Path, out: Path) -> dict[str, list[str]]:
    """name -> argv after `python`; the rsp-probe ones start with -c CLI."""
    return {
        "python": ["-c", "pass"],
        "pandas": ["-c", "import pandas, pyarrow.parquet"],
        "torch": ["-c", "import torch"],
        "models": ["-c", "import torch, transformers.modeling_utils; "
                   "from transformers import AutoModelForCausalLM, AutoTokenizer"],
        "help": ["-c", CLI, "--help"],
        "show": ["-c", CLI, "show", str(run)],
        "run": ["-c", CLI, "entropy", "--n-prompts", "1", "--samples", "1",
                "--max-new-tokens", "1", "--quiet", "--overwrite", "--out", str(out)],
    }


def timed(argv: list[str], tree: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one child process run with `tree` first on the path."""
    env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *argv], env=env, cwd=tree, capture_output=True,
                          text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[2:]) or argv}: exit {done.returncode}\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def imported_from(tree: Path) -> str:
    """Where `import rsp_probe` resolves with `tree` first on the path (a check that the
    right version is measured)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([sys.executable, "-c", "import rsp_probe; print(rsp_probe.__file__)"],
                          env=env, cwd=tree, capture_output=True, text=True,
                          check=True).stdout.strip()


def measure(trees: dict[str, Path], repeats: int, run: Path) -> dict:
    """{(command, tree label): [(wall, cpu), ...]}, interleaved."""
    samples: dict = {}
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(repeats):
            for label, tree in trees.items():
                for name, argv in commands(run, Path(scratch) / label).items():
                    if label != "this" and name in FLOORS:
                        continue  # the floors do not depend on the tree
                    samples.setdefault((name, label), []).append(timed(argv, tree))
    return samples


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def table(samples: dict, trees: dict[str, Path]) -> str:
    lines = ["| command | tree | wall s, median (range) | CPU s, median (range) | target |"
             + (" wall this/against | CPU this/against |" if "against" in trees else ""),
             "|---|---|---|---|---|" + ("---|---|" if "against" in trees else "")]
    for (name, label), values in samples.items():
        walls, cpus = [v[0] for v in values], [v[1] for v in values]
        target = f"<= {TARGETS[name]} s" if name in TARGETS else ""
        row = f"| {name} | {label} | {spread(walls)} | {spread(cpus)} | {target} |"
        other = samples.get((name, "against"))
        if label == "this" and other:
            ratios = [statistics.median(v[i] for v in values)
                      / statistics.median(v[i] for v in other) for i in (0, 1)]
            row += f" {ratios[0]:.2f} | {ratios[1]:.2f} |"
        elif "against" in trees:
            row += " | |"
        lines.append(row)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--against", type=Path, help="source tree of another version")
    parser.add_argument("--run", type=Path, default=ROOT / "figures" / "runs" / "entropy",
                        help="the run `show` prints (default: the committed entropy run)")
    args = parser.parse_args()
    trees = {"this": ROOT, **({"against": args.against.resolve()} if args.against else {})}
    for label, tree in trees.items():
        print(f"{label}: rsp_probe from {imported_from(tree)}")
    load = os.getloadavg()
    samples = measure(trees, args.repeats, args.run.resolve())
    print(f"\n{args.repeats} interleaved repeats; load average before: "
          f"{load[0]:.1f}, after: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n")
    print(table(samples, trees))


if __name__ == "__main__":
    main()
