"""The full plan of the train-rl figure and claims: both arms, two seeds each, on the default
model, sized for about 10 minutes per arm and seed on one CPU core.

    python -m rsp_probe.rl.plan OUT_DIR [--arm rsp|none] [--seed 0|1]
                                    # runs OUT_DIR/train-rl-<arm>-s<seed>

A killed plan is continued by running it again: a finished run is skipped, an interrupted
one resumes from its last checkpoint. `rsp-probe reproduce` runs the same plan (its runs are
reused there when their configuration matches)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

SEEDS = (0, 1)
ARMS = ("none", "rsp")
PLAN_OPTIONS = {"steps": 40, "checkpoint_every": 10, "prompts_per_step": 8, "group_size": 8,
                "n_prompts": 32, "samples": 8, "max_new_tokens": 96, "rsp_tokens": (4,)}


def run_name(arm: str, seed: int) -> str:
    return f"train-rl-{arm}-s{seed}"


# (run name, command, options): the train-rl experiment declares these as its reproduce runs
TRAIN_RL_PLAN = tuple((run_name(arm, seed), "train-rl", dict(PLAN_OPTIONS, arm=arm, seed=seed))
                      for arm in ARMS for seed in SEEDS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", help="folder for the runs")
    parser.add_argument("--arm", choices=ARMS, action="append", help="only these arms")
    parser.add_argument("--seed", type=int, choices=SEEDS, action="append",
                        help="only these seeds (to run seeds side by side)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    from rsp_probe.registry import EXPERIMENTS
    from rsp_probe.runs import DONE_FILE

    experiment = EXPERIMENTS.get("train-rl")
    for arm in args.arm or ARMS:
        for seed in args.seed or SEEDS:
            out = Path(args.out) / run_name(arm, seed)
            if (out / DONE_FILE).exists():
                continue
            staged = out.with_name(f".{out.name}.partial").exists()
            logging.info(f"{out}: {'resuming' if staged else 'starting'}")
            experiment(arm=arm, seed=seed, out=str(out), resume=staged, quiet=False,
                       **PLAN_OPTIONS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
