"""The theory's comparisons can fail, and say how often they should: the excess-exponent test
of the dilution law and the pooled dilution/suppression split, against a reference
implementation, on data drawn from their null and from named alternatives (size >= 0.9 and
power >= 0.8 over >= 50 replicates where the design allows it), and on altered copies of the
kept attention run (figures/runs/attention)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from scipy.stats import t as student_t

from rsp_probe.analysis.head_fits import head_cells, head_exponents
from rsp_probe.runs import Run
from rsp_probe.theory.budget import pooled_split
from rsp_probe.theory.calibration import (
    ALTERNATIVES,
    MIN_ACCEPTANCE,
    MIN_POWER,
    NULL,
    HeadDesign,
    calibrate,
    is_test,
)
from rsp_probe.theory.exponent import excess_exponent, exponent_test
from rsp_probe.theory.split_calibration import calibrate_split

ROOT = Path(__file__).resolve().parent.parent
N_REP = 100  # >= 50 replicates per scenario


def _design(sigma: float, rho: float = 0.3, prompts: int = 24, samples: int = 2,
            steps: int = 48, seed: int = 0) -> HeadDesign:
    """The committed attention run's shape: prompts of 43-69 tokens, trajectories of their
    own lengths, each with its own delta."""
    rng = np.random.default_rng(seed)
    n = np.repeat(rng.integers(43, 70, prompts), samples).astype(float)
    prompt = np.repeat(np.arange(prompts), samples)
    t = np.arange(1.0, steps + 1)
    lengths = rng.integers(steps // 2, steps + 1, prompts * samples)
    return HeadDesign(x=np.log(n[:, None] + t[None, :] - 1), steps=t,
                      measured=t[None, :] <= lengths[:, None], prompt=prompt,
                      delta=rng.normal(-3.0, 2.0, prompts * samples), sigma=sigma, rho=rho)


def _reference_slope(delta, x, prompt):
    """b and its CR1 cluster-robust 95% CI from an explicit dummy-variable regression."""
    rows = np.argwhere(np.isfinite(delta))
    y = delta[rows[:, 0], rows[:, 1]]
    traj = rows[:, 0]
    used = np.unique(traj)
    design = np.column_stack([x[rows[:, 0], rows[:, 1]]] +
                             [(traj == i).astype(float) for i in used])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    bread = np.linalg.inv(design.T @ design)
    clusters = prompt[traj]
    meat = sum(np.outer(s, s) for s in
               (design[clusters == c].T @ resid[clusters == c] for c in np.unique(clusters)))
    g, n_obs, p = np.unique(clusters).size, y.size, design.shape[1]
    cov = bread @ meat @ bread * (g / (g - 1)) * ((n_obs - 1) / (n_obs - p))
    se = np.sqrt(cov[0, 0])
    crit = student_t.ppf(0.975, g - 1)
    return coef[0], coef[0] - crit * se, coef[0] + crit * se


def test_excess_exponent_matches_a_dummy_variable_regression():
    design = _design(sigma=2.0, prompts=6, steps=12)
    rng = np.random.default_rng(3)
    delta = design.delta[:, None] + 0.7 * design.x + rng.standard_normal(design.x.shape)
    delta = np.where(design.measured, delta, np.nan)
    ours = [float(v) for v in excess_exponent(delta, design.x, design.prompt)]
    reference = _reference_slope(delta, design.x, design.prompt)
    np.testing.assert_allclose([ours[0], ours[2], ours[3]], reference, rtol=1e-9)


def test_exact_law_is_accepted_and_other_laws_are_rejected_without_noise():
    design = _design(sigma=0.0)
    rng = np.random.default_rng(0)
    noise = 1e-9 * rng.standard_normal(design.x.shape)  # rounding-sized, so a CI exists
    for scenario, b in ((NULL, 0.0), ("constant mass", 1.0), ("power law a=2", -1.0)):
        mass = expit(np.log(4) + design.delta[:, None] - design.x + noise +
                     b * (design.x - design.x[:, :1]))
        mass = np.where(design.measured, mass, np.nan)
        test = exponent_test(mass, design.steps, np.exp(design.x[:, 0]), 4, design.prompt)
        assert test.excess == pytest.approx(b, abs=1e-6)
        assert test.consistent == (scenario == NULL)


@pytest.mark.parametrize("sigma", [0.5, 4.0])
def test_size_holds_at_any_noise(sigma):
    assert calibrate(_design(sigma), n_rep=N_REP, seed=1)[NULL] >= MIN_ACCEPTANCE


def test_power_against_every_named_alternative_at_low_noise():
    rates = calibrate(_design(0.5), n_rep=N_REP, seed=2)
    assert all(rates[name] >= MIN_POWER for name in ALTERNATIVES), rates
    assert is_test(rates)


def test_high_noise_loses_power_and_is_called_a_consistency_check():
    rates = calibrate(_design(4.0), n_rep=N_REP, seed=2)
    assert rates["power law a=0.5"] < MIN_POWER
    assert not is_test(rates)


@pytest.fixture(scope="module")
def kept_cells():
    return head_cells(Run(ROOT / "figures" / "runs" / "attention"))


def _altered(cells: pd.DataFrame, law: str) -> pd.DataFrame:
    """The kept run's cells, each trajectory and head given its own delta (its median step
    advantage, clipped to what float32 holds) and masses that follow `law` exactly,
    rounded to float32 as a run stores them."""
    x = np.log(cells["n"] + cells["step"] - 1)
    with np.errstate(divide="ignore"):
        delta = np.log(cells["mass"]) - np.log1p(-cells["mass"]) + x - np.log(cells["k"])
    key = [cells["trajectory"], cells["layer"], cells["head"]]
    own = delta.where(np.isfinite(delta)).groupby(key).transform("median").fillna(0.0)
    own = own.clip(-40.0, 10.0)
    if law == "dilution":
        logit = np.log(cells["k"]) + own - x
    elif law == "constant mass":
        logit = np.log(cells["k"]) + own - np.log(cells["n"])
    else:
        raise ValueError(law)
    return cells.assign(mass=expit(logit).astype(np.float32).astype(float))


def test_altered_copies_of_the_kept_run_accept_the_law_and_reject_constant_mass(kept_cells):
    """The issue's counterexample: the old averaged-curve fits called the law beaten in 26
    of 32 heads of an exact copy and missed constant mass in 29 of 32."""
    exact = head_exponents(_altered(kept_cells, "dilution"), n_rep=0)
    constant = head_exponents(_altered(kept_cells, "constant mass"), n_rep=0)
    assert len(exact) == len(constant) == 32
    accepted = sum(h.exponent.consistent for h in exact)
    assert accepted >= MIN_ACCEPTANCE * len(exact)
    assert all(abs(h.exponent.excess) < 1e-2 for h in exact)
    assert all(not h.exponent.consistent and h.exponent.excess > 0.9 for h in constant)


def test_pooled_split_is_exact_and_counts_zero_mass_cells():
    rng = np.random.default_rng(0)
    m1 = rng.uniform(0, 0.5, 200)
    m1[:5] = 0.0
    ms = np.clip(m1 * rng.uniform(0.2, 1.3, 200), 0, 1)
    ms[5:15] = 0.0
    n = rng.integers(40, 70, 200).astype(float)
    out = pooled_split(m1, ms, n, 16, np.repeat(np.arange(20), 10), n_boot=200)
    total, dilution, suppression = out["total"][0], out["dilution"][0], out["suppression"][0]
    assert total == pytest.approx(ms.mean() - m1.mean())
    with np.errstate(divide="ignore"):
        counterfactual = expit(np.log(m1 / (1 - m1)) - np.log((n + 15) / n))
    assert dilution == pytest.approx(counterfactual.mean() - m1.mean())
    assert total == pytest.approx(dilution + suppression)
    assert (out["zero_1"], out["zero_s"], out["rises"]) == (5, 15, int((ms > m1).sum()))
    for part in ("total", "dilution", "suppression", "dilution_share"):
        value, low, high = out[part]
        assert low <= value <= high


def _split_design(seed: int = 0):
    rng = np.random.default_rng(seed)
    prompts, cells_per_prompt = 24, 32
    n = np.repeat(rng.integers(43, 70, prompts), cells_per_prompt).astype(float)
    cluster = np.repeat(np.arange(prompts), cells_per_prompt)
    delta_1 = rng.normal(0.0, 1.5, n.size)
    return delta_1, n, cluster


def test_split_calibration_size_and_power_at_low_noise():
    delta_1, n, cluster = _split_design()
    rates = calibrate_split(delta_1, n, 4, 16, cluster, sigma=0.1, n_rep=60, seed=0)
    assert rates[NULL] >= MIN_ACCEPTANCE
    assert all(rates[name] >= MIN_POWER for name in ALTERNATIVES), rates


def test_split_calibration_keeps_its_size_at_the_kept_runs_noise():
    delta_1, n, cluster = _split_design(1)
    rates = calibrate_split(delta_1, n, 16, 16, cluster, sigma=4.0, n_rep=60, seed=1)
    assert rates[NULL] >= MIN_ACCEPTANCE
    assert max(rates[name] for name in ALTERNATIVES) < MIN_POWER  # a consistency check


def _slope_frame(slope: float, rng, prompts: int = 24, steps: int = 6, draws: int = 4,
                 noise: float = 0.5) -> pd.DataFrame:
    """Influence points of one head: draws of a prompt at a step share a cell effect; log y
    follows `slope` log m plus Gaussian noise."""
    rows = []
    for p in range(prompts):
        for t in range(1, steps + 1):
            log_m = rng.normal(-3.0, 1.0, draws)
            log_y = slope * log_m + rng.normal(0, 2) + noise * rng.standard_normal(draws)
            rows.append(pd.DataFrame({"prompt_id": f"p{p}", "step": t,
                                      "mass": np.exp(log_m), "y": np.exp(log_y)}))
    return pd.concat(rows, ignore_index=True)


def test_slope_calibration_has_size_and_power_and_matches_cell_slope():
    from rsp_probe.analysis.scaling import cell_slope
    from rsp_probe.analysis.scaling_calibration import calibrate_slope

    rng = np.random.default_rng(0)
    frame = _slope_frame(2.0, rng)
    rates = calibrate_slope(frame, 2.0, n_rep=4 * N_REP, n_boot=500)
    assert rates["slope 2"] >= MIN_ACCEPTANCE
    assert all(rates[name] >= MIN_POWER for name in ("slope 0", "slope 1", "slope 3"))
    # the vectorised replicates behave as cell_slope on frames drawn the same way
    direct = np.mean([low <= 2.0 <= high for low, high in (
        cell_slope(_slope_frame(2.0, rng), n_boot=500)[1:3] for _ in range(60))])
    assert abs(direct - rates["slope 2"]) < 0.15  # two binomial shares of ~0.95


def test_a_head_without_finite_advantages_is_not_measurable_not_rejected():
    design = _design(sigma=1.0, prompts=4, steps=10)
    mass = np.where(design.measured, 0.0, np.nan)
    test = exponent_test(mass, design.steps, np.exp(design.x[:, 0]), 4, design.prompt)
    assert test.verdict == "not measurable" and test.n_zero == int(design.measured.sum())
    assert test.n_points == 0
