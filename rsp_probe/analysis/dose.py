"""Dose-response tables from a `rsp-probe dose` run (no torch): per dose, the measures of
analysis/knockout.condition_table against the baseline k0; and the KL ~ m^2 test of the
score-shift dose: within each (condition, prompt, step) cell, the slope of log KL against
log m over the betas (the theory predicts 2)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from rsp_probe.analysis.knockout import condition_table
from rsp_probe.runs import Run

BASELINE = "k0"
KL_PROBE = "dose_kl"
MIN_KL = 1e-10  # cells below this KL are rounding, not signal


def _describe(group: pd.DataFrame) -> dict:
    return {"k": int(group["rsp_tokens"].iloc[0]),
            "sigma_scale": float(group["dose_sigma_scale"].iloc[0])}


def dose_table(run: Run, ks: Sequence[int]) -> pd.DataFrame:
    return condition_table(run, ks, (BASELINE,), KL_PROBE, _describe)


def score_shift_table(rows: list[dict]) -> pd.DataFrame:
    """The raw (condition, prompt_id, step, beta, m, kl) rows with each cell's slope."""
    frame = pd.DataFrame(rows, columns=["condition", "prompt_id", "step", "beta", "m", "kl"])
    slopes = {key: _slope(cell) for key, cell in
              frame.groupby(["condition", "prompt_id", "step"], sort=False)}
    frame["cell_slope"] = [slopes[key] for key in
                           zip(frame["condition"], frame["prompt_id"], frame["step"])]
    return frame


def _slope(cell: pd.DataFrame) -> float:
    keep = (cell["kl"] > MIN_KL) & (cell["m"] > 0)
    if keep.sum() < 3:
        return float("nan")
    x, y = np.log(cell.loc[keep, "m"]), np.log(cell.loc[keep, "kl"])
    return float(np.polyfit(x, y, 1)[0])
