"""Weighted fits against scipy's curve_fit, the identity's inversion, and the per-head
excess-exponent test on constructed data whose delta is known (docs/theory.md, section 2)."""

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import curve_fit

from rsp_probe.analysis.head_fits import head_exponents, step_delta
from rsp_probe.theory import dilution_mass, fit_dilution, fit_power_law, invert_delta


def test_weighted_fit_matches_curve_fit_with_sigma():
    rng = np.random.default_rng(0)
    t = np.arange(1.0, 41.0)
    sigma = 0.002 + 0.01 * rng.random(t.size)
    m = dilution_mass(t, 12, 4, 1.3) + sigma * rng.standard_normal(t.size)
    ours = fit_dilution(t, m, 12, 4, sigma=sigma)
    popt, pcov = curve_fit(lambda x, d: dilution_mass(x, 12, 4, d), t, m, p0=[0.0],
                           sigma=sigma, absolute_sigma=False)
    assert ours.params["delta"] == pytest.approx(popt[0], abs=1e-6)
    assert ours.stderr["delta"] == pytest.approx(np.sqrt(pcov[0, 0]), rel=1e-4)
    # a two-parameter law in log space: the stderr maps through the delta method
    law = fit_power_law(t, m, 12, sigma=sigma)
    popt, pcov = curve_fit(lambda x, a, alpha: a * (12 + x - 1) ** -alpha, t, m,
                           p0=[law.params["a"], law.params["alpha"]], sigma=sigma)
    assert law.params["alpha"] == pytest.approx(popt[1], rel=1e-5)
    assert law.stderr["alpha"] == pytest.approx(np.sqrt(pcov[1, 1]), rel=1e-3)


def test_weights_change_the_fit_and_bad_sigma_is_refused():
    t = np.arange(1.0, 21.0)
    m = dilution_mass(t, 10, 4, 0.0)
    m[:3] += 0.2  # early steps off the law
    loose_early = np.where(t <= 3, 10.0, 0.001)
    assert fit_dilution(t, m, 10, 4, sigma=loose_early).params["delta"] == pytest.approx(
        0.0, abs=1e-3)
    assert fit_dilution(t, m, 10, 4).params["delta"] > 0.1
    with pytest.raises(ValueError, match="sigma"):
        fit_dilution(t, m, 10, 4, sigma=np.zeros_like(t))


@pytest.mark.parametrize("delta", [-2.0, 0.0, 1.7])
def test_invert_delta_recovers_the_law(delta):
    t = np.arange(1, 30)
    m = dilution_mass(t, 9, 16, delta)
    np.testing.assert_allclose(invert_delta(m, t, 9, 16), delta, atol=1e-9)
    assert invert_delta(0.0, 1, 9, 16) == -np.inf


def _cells(deltas: dict[tuple[int, int], float], n_prompts=6, steps=30, k=4, noise=0.05):
    """Trajectories of prompts with different n whose per-head mass follows the law with the
    head's delta, times lognormal noise per trajectory and step."""
    rng = np.random.default_rng(1)
    rows = []
    for p in range(n_prompts):
        n = 40 + 5 * p
        for sample in range(2):
            length = steps - sample * 3
            t = np.arange(1, length + 1)
            for (layer, head), delta in deltas.items():
                mass = dilution_mass(t, n, k, delta) * np.exp(noise * rng.standard_normal(t.size))
                rows.append(pd.DataFrame({
                    "trajectory": f"c/{p}/{sample}", "step": t, "layer": layer, "head": head,
                    "mass": np.clip(mass, 0, 1), "condition": "c", "prompt_id": f"p{p}",
                    "k": k, "n": float(n)}))
    return pd.concat(rows, ignore_index=True)


def test_per_head_step_delta_and_exponent_on_constructed_data():
    deltas = {(0, 0): -1.5, (0, 1): 0.5, (1, 0): 2.0}
    cells = _cells(deltas)
    heads = {(h.layer, h.head): h for h in head_exponents(cells, n_rep=50)}
    for key, delta in deltas.items():
        head = heads[key]
        mine = cells[(cells["layer"] == key[0]) & (cells["head"] == key[1])]
        assert step_delta(mine, step=1, n_boot=50).value == pytest.approx(delta, abs=0.1)
        assert head.delta_step1.value == pytest.approx(step_delta(mine, 1).value)
        # the data follow the law: the excess exponent is near 0 (a 95% interval may
        # miss 0 by chance in one head of three; the calibration says how often)
        assert abs(head.exponent.excess) < 0.1
        assert head.rates["dilution"] >= 0.9
        assert head.kind == "test"  # lognormal noise of 0.05: power against every law
    assert sum(head.exponent.consistent for head in heads.values()) >= 2


def test_head_exponent_rejects_exponential_decay():
    cells = _cells({(0, 0): 1.0}, noise=0.01)
    cells["mass"] = 0.3 * np.exp(-0.3 * (cells["step"] - 1)) + 0.01
    head = head_exponents(cells, n_rep=0)[0]
    assert not head.exponent.consistent
    assert head.exponent.verdict == "faster than dilution"


def test_window_summary_uses_fixed_windows_and_each_trajectory_length():
    """Two prompts; trajectory lengths 20 and 12: late = each one's own last 10 steps."""
    from rsp_probe.analysis.stats import summarise_windows
    from rsp_probe.analysis.windows import LATE_LAST

    rows = []
    for prompt, length in (("p0", 20), ("p1", 12)):
        steps = np.arange(1, length + 1)
        rows.append(pd.DataFrame({"trajectory": prompt, "prompt_id": prompt, "condition": "c",
                                  "step": steps, "value": steps.astype(float)}))
    summary = summarise_windows(pd.concat(rows), by=("condition",), n_boot=50)
    got = dict(zip(summary["window"].astype(str), summary["mean"]))
    late = [np.mean(np.arange(n - LATE_LAST + 1, n + 1)) for n in (20, 12)]
    assert got["early"] == pytest.approx(2.0)
    assert got["middle"] == pytest.approx((np.mean(np.arange(4, 17)) + np.mean(np.arange(4, 13)))
                                          / 2)
    assert got["late"] == pytest.approx(np.mean(late))
    assert list(summary["window"].astype(str)) == ["early", "middle", "late"]


@pytest.mark.parametrize("law", ["dilution", "sink", "power_law", "exponential"])
def test_refit_from_a_fit_reaches_the_same_optimum(law):
    from rsp_probe.theory import compare_models
    from rsp_probe.theory.fit import refit

    rng = np.random.default_rng(2)
    t = np.arange(1.0, 31.0)
    m = dilution_mass(t, 10, 4, 0.7) * np.exp(0.05 * rng.standard_normal(t.size))
    sigma = 0.01 + 0.0 * t
    fit = {f.model: f for f in compare_models(t, m, 10, 4, sigma)}[law]
    again = refit(fit, t, m, sigma)
    assert again.aic == pytest.approx(fit.aic, abs=1e-6)
    for name, value in fit.params.items():
        assert again.params[name] == pytest.approx(value, rel=1e-4, abs=1e-8)
