"""`rsp-probe train-rl`'s own options (the shared model/data/RSP/sampling/output pieces come
from config.py: --n-prompts and --samples size the held-out evaluation, --temperature and
--max-new-tokens the rollouts, --rsp-tokens and --law the RSP)."""

from __future__ import annotations

from dataclasses import dataclass

from rsp_probe.config import _opt

ARMS = ("rsp", "none")
OVERLONG = ("filter", "penalty", "none")


@dataclass(frozen=True)
class TrainRLOptions:
    arm: str = _opt("rsp", "rsp: a fresh RSP in every rollout and in the training forward pass; "
                    "none: no RSP in training (both are probed with and without one)",
                    choices=ARMS)
    steps: int = _opt(48, "optimiser updates of DAPO (rollout batches)")
    prompts_per_step: int = _opt(8, "groups (problems) per update after dynamic sampling")
    group_size: int = _opt(8, "G, rollouts per problem")
    max_rounds: int = _opt(3, "dynamic sampling: rounds of prompts_per_step problems sampled at "
                           "most to fill a batch with mixed-reward groups")
    lr: float = _opt(1e-4, "Adam learning rate")
    inner_steps: int = _opt(2, "optimiser steps per rollout batch (ratio 1 on the first)")
    eps_low: float = _opt(0.2, "lower clip range")
    eps_high: float = _opt(0.28, "upper clip range (clip-higher)")
    overlong: str = _opt("filter", "filter: truncated rollouts leave the loss; penalty: DAPO's "
                         "soft overlong penalty on the reward; none", choices=OVERLONG)
    overlong_cache: int = _opt(16, "tokens before --max-new-tokens where the soft penalty starts")
    checkpoint_every: int = _opt(12, "save and probe a checkpoint every N updates")
    pass_k: tuple[int, ...] = _opt((1, 8), "k values of Pass@k on the held-out problems, each "
                                   "<= --samples", renamed_from=("ks",))
    train_pool: int = _opt(2000, "training problems (train split) the batches are drawn from")
    chunk_rows: int = _opt(32, "rollouts per training forward pass (gradients accumulate)")
    max_grad_norm: float = _opt(1.0, "gradient clipping norm")
