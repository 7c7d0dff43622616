"""Knockouts as score taps: RSP keys masked at chosen layers for queries from a chosen step.

During sampling (`KnockoutIntervention`, one per batch like a probe) a forward pass belongs to
one step, and every query row of it is blocked when that step is >= cut_after. In a
teacher-forced full forward (`teacher_forced_tap`) row r belongs to step
max(1, r - first_step_row + 1), which reproduces the cached run exactly.
"""

from __future__ import annotations

import torch

from rsp_probe.backends.base import ATTN_SCORES, Tap
from rsp_probe.interventions.spec import Knockout
from rsp_probe.probes.base import BatchContext


def mask_keys(scores: torch.Tensor, key_mask: torch.Tensor,
              rows: torch.Tensor | None = None) -> torch.Tensor:
    """scores [B, H, Q, K] with the keys of key_mask [B, K0] (bool, the first K0 keys) set
    to the dtype's lowest value, in the query rows of `rows` [Q] (bool; None: all).

    The lowest finite value rather than -inf: a row whose every key is masked (an RSP slot at
    position 0) stays finite instead of turning NaN, and other rows give it weight exactly 0.
    """
    n_keys = key_mask.shape[1]
    blocked = torch.zeros(scores.shape[0], 1, scores.shape[2], scores.shape[3], dtype=torch.bool,
                          device=scores.device)
    row_mask = torch.ones(scores.shape[2], dtype=torch.bool, device=scores.device) \
        if rows is None else rows.to(scores.device)
    blocked[..., :n_keys] = key_mask[:, None, None, :] & row_mask[None, None, :, None]
    return scores.masked_fill(blocked, torch.finfo(scores.dtype).min)


class KnockoutIntervention:
    """A StepProbe that records nothing and masks the RSP keys' scores from step cut_after."""

    def __init__(self, context: BatchContext, knockout: Knockout):
        self.knockout = knockout
        self.key_mask = context.rsp_key_mask.bool()
        self.layers = knockout.layers or tuple(range(context.n_layers))
        self.n_rows = context.n_rows
        self.step = 0

    def taps(self) -> list[Tap]:
        if self.knockout.cut_after is None:
            return []
        return [Tap(ATTN_SCORES, self.layers, self._mask, newest_only=False)]

    def _mask(self, layer: int, scores: torch.Tensor) -> torch.Tensor | None:
        if self.step < self.knockout.cut_after:
            return None
        return mask_keys(scores, self.key_mask)

    def begin_step(self, step: int) -> None:
        self.step = step

    def record(self, step: int, logits: torch.Tensor) -> None:
        pass

    def check_step(self) -> None:
        pass

    def finalize(self, n_steps) -> list[dict]:
        return [{} for _ in n_steps]


def knockout_factory(knockout: Knockout):
    """The per-batch factory the sampler's `interventions=` takes."""
    return lambda context: KnockoutIntervention(context, knockout)


def row_steps(n_rows: int, first_step_row: int) -> torch.Tensor:
    """The step each query row of a teacher-forced forward belongs to: the input rows are
    the prefill (step 1); row first_step_row + j is generated token j's pass (step j + 1)."""
    return (torch.arange(n_rows) - first_step_row + 1).clamp(min=1)


def teacher_forced_tap(knockout: Knockout, key_mask: torch.Tensor, first_step_row: int,
                       n_layers: int) -> list[Tap]:
    """The knockout as taps for one full forward over [B, T] inputs (key_mask [B, T0])."""
    if knockout.cut_after is None:
        return []
    mask = key_mask.bool()

    def blocked(layer: int, scores: torch.Tensor) -> torch.Tensor:
        rows = row_steps(scores.shape[2], first_step_row) >= knockout.cut_after
        return mask_keys(scores, mask, rows)

    return [Tap(ATTN_SCORES, knockout.layers or tuple(range(n_layers)), blocked,
                newest_only=False)]
