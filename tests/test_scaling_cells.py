"""Within-cell log-log slopes on constructed data with known exponents."""

import numpy as np
import pandas as pd
import pytest

from rsp_probe.analysis.scaling import cell_slope


def _points(exponent, n_prompts=8, steps=5, draws=6, seed=0):
    """y = a_(prompt, step) * m^exponent * noise: the cell factor a differs wildly between
    cells (and correlates with the cell's mass level), which a pooled fit would absorb."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_prompts):
        for step in range(1, steps + 1):
            level = rng.uniform(0.01, 0.3)
            mass = level * np.exp(0.5 * rng.standard_normal(draws))
            cell = np.exp(3 * np.log(level) * -1 + rng.standard_normal())  # anti-correlated
            y = cell * mass**exponent * np.exp(0.05 * rng.standard_normal(draws))
            rows.append(pd.DataFrame({"prompt_id": f"p{p}", "step": step, "mass": mass,
                                      "y": y}))
    return pd.concat(rows, ignore_index=True)


@pytest.mark.parametrize("exponent", [1.0, 2.0])
def test_within_cell_slope_recovers_the_exponent(exponent):
    frame = _points(exponent)
    slope, low, high, n_points, n_prompts = cell_slope(frame, n_boot=300)
    assert slope == pytest.approx(exponent, abs=0.05)
    assert low <= exponent <= high
    assert (n_points, n_prompts) == (8 * 5 * 6, 8)
    # the pooled slope is confounded by the cell factor and misses the exponent
    pooled = np.polyfit(np.log(frame["mass"]), np.log(frame["y"]), 1)[0]
    assert abs(pooled - exponent) > 0.5


def test_masses_below_the_floor_are_left_out():
    frame = _points(2.0)
    frame.loc[frame.index[:6], "mass"] = 1e-30  # one cell of negligible mass
    _, _, _, n_points, _ = cell_slope(frame, n_boot=0)
    assert n_points == 8 * 5 * 6 - 6
