"""The run summary's dilution/suppression table (analysis.budget.shares_at_step) on a budget
frame written here: cells of mass exactly 0 are counted, not dropped silently, and the pooled
split over every cell (zeros as 0) is the one theory.budget.pooled_split measures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rsp_probe.analysis.budget import shares_at_step
from rsp_probe.theory.budget import dilution_part, logit, pooled_split


def _frame() -> pd.DataFrame:
    """Four trajectories (two prompts), one layer, two heads, steps 1 and 5; head 1 of
    trajectory t0 falls to mass 0 and head 0 of t3 rises."""
    mass_1 = np.array([0.30, 0.20, 0.25, 0.10, 0.40, 0.05, 0.10, 0.30])
    mass_5 = np.array([0.20, 0.00, 0.15, 0.08, 0.30, 0.04, 0.20, 0.10])
    rows = []
    for i, (m1, m5) in enumerate(zip(mass_1, mass_5)):
        trajectory, head = f"t{i // 2}", i % 2
        n = 20.0 + 10 * (i // 2)
        for step, m in ((1, m1), (5, m5)):
            total = float(logit(m) - logit(m1)) if m > 0 else -np.inf
            dilution = float(dilution_part(n, step))
            rows.append({"condition": "k4", "trajectory": trajectory, "layer": 0,
                         "head": head, "step": step, "rsp": m, "n": n, "total": total,
                         "dilution": dilution, "suppression": total - dilution,
                         "prompt_id": f"p{i // 4}"})
    return pd.DataFrame(rows)


def test_zero_mass_cells_are_counted_and_enter_the_pooled_split_as_zero():
    frame = _frame()
    with np.errstate(divide="ignore"):
        table = shares_at_step(frame, step=5, n_boot=100)
    row = table[table["layer"] == -1].iloc[0]
    assert row["step"] == 5 and row["n_cells"] == 8 and row["n_left_out"] == 1
    assert row["zero_1"] == 0 and row["zero_s"] == 1 and row["rises"] == 1
    first, last = frame[frame["step"] == 1], frame[frame["step"] == 5]
    assert row["pooled_total"] == pytest.approx(last["rsp"].mean() - first["rsp"].mean())
    expected = pooled_split(first["rsp"], last["rsp"], last["n"], 5, last["prompt_id"],
                            n_boot=100)
    assert row["pooled_dilution_share"] == pytest.approx(expected["dilution_share"][0])
    finite = last[np.isfinite(last["total"])]
    assert row["change"] == pytest.approx(finite["total"].mean())
    assert row["pooled_share_low"] <= row["pooled_dilution_share"] <= row["pooled_share_high"]
