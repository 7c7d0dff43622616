"""Knockouts as score taps: RSP keys masked at chosen layers for queries from a chosen step.

During sampling (`KnockoutIntervention`, one per batch like a probe) a forward pass belongs to
one step, and every query row of it is blocked when that step is >= cut_after. In a
teacher-forced full forward (`teacher_forced_tap`) row r belongs to step
max(1, r - first_step_row + 1), which reproduces the cached run exactly.

A path (`PathIntervention`) needs two passes per step, because the newest position plays
two parts: its query gives this step's logits, and its keys and values are what every later
query reads. The sampler runs the step once with the logits mask, drops the newest
position(s) from the cache, and runs it again with the cache mask (`rewrites_cache`):

    path       logits pass blocks              cache pass blocks
    direct     every non-RSP row but the last  every non-RSP row
    indirect   the last row                    nothing
"""

from __future__ import annotations

import torch

from rsp_probe.backends.base import ATTN_SCORES, Tap
from rsp_probe.interventions.spec import Knockout
from rsp_probe.probes.base import BatchContext


def mask_keys(scores: torch.Tensor, key_mask: torch.Tensor,
              rows: torch.Tensor | None = None) -> torch.Tensor:
    """scores [B, H, Q, K] with the keys of key_mask [B, K0] (bool, the first K0 keys) set
    to the dtype's lowest value, in the query rows of `rows` ([Q] or [B, Q] bool; None: all).

    The lowest finite value rather than -inf: a row whose every key is masked (an RSP slot at
    position 0) stays finite instead of turning NaN, and other rows give it weight exactly 0.
    """
    n_keys = key_mask.shape[1]
    blocked = torch.zeros(scores.shape[0], 1, scores.shape[2], scores.shape[3], dtype=torch.bool,
                          device=scores.device)
    row_mask = torch.ones(scores.shape[2], dtype=torch.bool, device=scores.device) \
        if rows is None else rows.to(scores.device)
    row_mask = row_mask.expand(scores.shape[0], -1)  # [B, Q]
    blocked[..., :n_keys] = key_mask[:, None, None, :] & row_mask[:, None, :, None]
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


class PathIntervention(KnockoutIntervention):
    """One path of the RSP kept (Knockout.path), sampled exactly: the sampler calls
    begin_pass(False) before the logits pass of each step and begin_pass(True) before
    the cache pass, which recomputes the newest positions' keys and values."""

    rewrites_cache = True

    def __init__(self, context: BatchContext, knockout: Knockout):
        super().__init__(context, knockout)
        self.layers = tuple(range(context.n_layers))
        self.cache_pass = False

    def begin_pass(self, cache_pass: bool) -> None:
        self.cache_pass = cache_pass

    def taps(self) -> list[Tap]:
        return [Tap(ATTN_SCORES, self.layers, self._mask, newest_only=False)]

    def _mask(self, layer: int, scores: torch.Tensor) -> torch.Tensor | None:
        n_rows = scores.shape[2]
        newest = torch.arange(n_rows, device=scores.device) == n_rows - 1  # [Q]
        if self.knockout.path == "indirect":
            return None if self.cache_pass else mask_keys(scores, self.key_mask, newest)
        # the prefill's rows are the input positions, whose RSP slots keep reading the RSP
        rsp_rows = self.key_mask if self.step == 1 else torch.zeros(
            scores.shape[0], n_rows, dtype=torch.bool, device=scores.device)
        rows = ~rsp_rows if self.cache_pass else ~rsp_rows & ~newest[None]
        return mask_keys(scores, self.key_mask, rows)


def knockout_factory(knockout: Knockout):
    """The per-batch factory the sampler's `interventions=` takes."""
    if knockout.path is not None:
        return lambda context: PathIntervention(context, knockout)
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
