"""The knockout paths as a 2x2 design (called from the knockout claim family). No torch.

Two factors: does the newest query read the RSP keys (the direct path), and do the earlier
positions read them (the indirect path)? The four cells are the full RSP (both paths), the
direct-only and indirect-only conditions, and the RSP keys masked from step 1 (the prefill)
on, which removes both. The response is the teacher-forced KL(p_full || p_cell) along the
full RSP's tokens, per prompt and fixed window (0 for the full RSP by definition). So

- removing the direct path costs KL(indirect-only) with the indirect path present and
  KL(cut from step 1) - KL(direct-only) without it;
- the interaction is the difference of the two,
  KL(cut from step 1) - KL(direct-only) - KL(indirect-only): 0 when the paths' effects add.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd

from rsp_probe.claims.core import Claim
from rsp_probe.claims.measures import (
    WINDOW_TEXT,
    WINDOWS,
    estimate,
    verdict,
    window_by_prompt,
    window_frame,
)
from rsp_probe.runs import Run

KL_PROBE = "knockout_kl"
FULL = "full"


def design_cells(run: Run) -> dict[str, str] | None:
    """Cell name ("none", "direct", "indirect") -> condition, or None when the run lacks one.
    "direct" is the condition where only the direct path is left."""
    found = {}
    for condition, spec in run.trajectories.groupby("condition")["intervention"].first().items():
        if not isinstance(spec, dict):
            continue
        if spec.get("path") in ("direct", "indirect"):
            found[spec["path"]] = condition
        elif spec.get("layers") is None and spec.get("cut_after") == 1:
            found["none"] = condition
    return found if {"none", "direct", "indirect"} <= set(found) else None


def path_claims(run: Run) -> Iterator[Claim]:
    """Per window: the interaction of the 2x2 and the cost of removing each path."""
    cells = design_cells(run)
    if cells is None or not (run.steps["probe"] == KL_PROBE).any():
        return
    frame = window_frame(run, KL_PROBE, reference=FULL)
    for window in WINDOWS:
        per_prompt = window_by_prompt(frame, window)
        kl = pd.DataFrame({cell: per_prompt.xs(condition, level=0)
                           for cell, condition in cells.items()}).dropna()
        yield _claim(window, "interaction", kl["none"] - kl["direct"] - kl["indirect"],
                     "KL(no path) - KL(direct only) - KL(indirect only), the interaction of "
                     "the 2x2 (0 when the two paths' effects add)",
                     "{window_text}, knockout paths as a 2x2 (RSP keys masked from step 1, "
                     "the prefill, on = neither path): interaction {value:+.4f} nats, 95% CI "
                     "[{ci_low:+.4f}, {ci_high:+.4f}] ({verdict}; {n} prompts).",
                     ("more than additive", "less than additive", "consistent with additive"))
        yield _claim(window, "direct_minus_indirect", kl["indirect"] - kl["direct"],
                     "KL(indirect only) - KL(direct only): the cost of removing the direct "
                     "path minus that of removing the indirect one, both against the full RSP",
                     "{window_text}: KL with the direct path removed (indirect only) minus "
                     "KL with the indirect path removed (direct only): {value:+.4f} nats, "
                     "95% CI [{ci_low:+.4f}, {ci_high:+.4f}] ({verdict}; {n} prompts).",
                     ("the direct path carries more", "the indirect path carries more",
                      "no detectable difference"))


def _claim(window: str, name: str, values, statistic: str, template: str, words) -> Claim:
    stats = estimate(values.to_numpy())
    return Claim(id=f"knockout.paths.{name}.{window}", section="Knockout", runs=("knockout",),
                 statistic=f"per prompt, {statistic}; window means as the knockout KL; mean "
                           "over prompts, prompt-bootstrap 95% CI", template=template, **stats,
                 fields={"window_text": WINDOW_TEXT[window],
                         "verdict": verdict(stats["ci_low"], stats["ci_high"], *words)})
