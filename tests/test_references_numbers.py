"""Every reported number from logits or counts against an independent reference: influence
(KL, TV, entropy shift) against scipy/numpy, pass@k intervals against scipy's percentile
bootstrap, and the paired differences of a synthetic run whose answer is known."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest
import torch
from scipy import stats
from synthetic_runs import counts_run

from rsp_probe.analysis.pass_at_k import bootstrap_pass_at_k, paired_difference
from rsp_probe.analysis.passk import paired_table, passk_table
from rsp_probe.probes.influence import influence_values

# -- influence: KL(p_rsp || p_base) as README and the docstring say ----------------------------

# Row 0: the RSP distribution is peaked where the base is flat, so KL(rsp||base) = 1.3 and
# KL(base||rsp) = 4.5 nats: a swapped direction cannot pass. Row 1: both argmaxes differ.
# Row 2: identical distributions.
BASE = np.array([[0.0, 0.0, 0.0, 0.0], [2.0, 0.0, -1.0, 0.5], [1.0, -2.0, 0.3, 0.0]])
RSP = np.array([[6.0, 0.0, 0.0, -1.0], [0.0, 2.5, -1.0, 0.5], [1.0, -2.0, 0.3, 0.0]])


def _softmax(logits):
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def test_influence_matches_scipy_in_the_documented_direction():
    check_influence(influence_values)


def check_influence(influence_values):
    values = influence_values(torch.tensor(BASE), torch.tensor(RSP))
    p_base, p_rsp = _softmax(BASE), _softmax(RSP)
    kl_rsp_base = stats.entropy(p_rsp, p_base, axis=-1)  # sum p_rsp log(p_rsp / p_base)
    kl_base_rsp = stats.entropy(p_base, p_rsp, axis=-1)
    assert abs(kl_rsp_base[0] - kl_base_rsp[0]) > 2.0  # the case tells the directions apart
    np.testing.assert_allclose(values["kl"].numpy(), kl_rsp_base, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(values["tv"].numpy(), 0.5 * np.abs(p_rsp - p_base).sum(-1),
                               rtol=1e-10)
    np.testing.assert_allclose(values["entropy_delta"].numpy(),
                               stats.entropy(p_rsp, axis=-1) - stats.entropy(p_base, axis=-1),
                               rtol=1e-10, atol=1e-12)
    assert values["top1_agree"].tolist() == [1.0, 0.0, 1.0]
    assert values["kl"][2] == 0.0 and values["tv"][2] == 0.0


def test_influence_keeps_leading_axes_and_handles_underflowing_probabilities():
    # exp(-1e4) underflows to exactly 0 in float64: 0 log 0 terms must count as 0
    base = torch.tensor([[[0.0, 0.0, -1e4], [1.0, 1.0, 1.0]]])  # [1, S=2, V=3]
    rsp = torch.tensor([[[0.0, -1e4, -1e4], [1.0, 1.0, 1.0]]])
    values = influence_values(base, rsp)
    assert values["kl"].shape == (1, 2)
    np.testing.assert_allclose(values["kl"][0].numpy(), [np.log(2.0), 0.0], atol=1e-12)
    np.testing.assert_allclose(values["tv"][0].numpy(), [0.5, 0.0], atol=1e-12)
    np.testing.assert_allclose(values["entropy_delta"][0].numpy(), [-np.log(2.0), 0.0],
                               atol=1e-12)


# -- pass@k intervals against scipy's percentile bootstrap --------------------------------------

COUNTS = np.random.default_rng(7).integers(0, 9, size=60)


def _reference_interval(per_problem, ci):
    result = stats.bootstrap((per_problem,), np.mean, n_resamples=10_000, confidence_level=ci,
                             method="percentile", random_state=np.random.default_rng(11))
    return result.confidence_interval


@pytest.mark.parametrize("ci", [0.5, 0.8, 0.95, 0.99])
def test_pass_at_k_interval_matches_a_direct_percentile_bootstrap(ci):
    check_pass_at_k_interval(bootstrap_pass_at_k, ci)


def check_pass_at_k_interval(bootstrap_pass_at_k, ci):
    k, n = 2, 8
    per_problem = np.array([1 - comb(n - c, k) / comb(n, k) for c in COUNTS])
    mean, lo, hi = bootstrap_pass_at_k(COUNTS, n, k, n_boot=10_000, seed=3, ci=ci)
    ref = _reference_interval(per_problem, ci)
    assert mean == pytest.approx(per_problem.mean(), abs=1e-12)
    # Monte Carlo error is far below 0.15 a standard error; the bootstrap means sit on
    # a grid of 1 / (28 * 60) (pass@2 of 8 is a multiple of 1/28)
    tolerance = 0.15 * per_problem.std() / np.sqrt(len(per_problem)) + 1 / (28 * 60)
    assert (lo, hi) == pytest.approx((ref.low, ref.high), abs=tolerance)


def test_intervals_widen_with_the_confidence_level():
    check_widening(bootstrap_pass_at_k, paired_difference)


def check_widening(bootstrap_pass_at_k, paired_difference):
    widths, paired = [], []
    a, b = COUNTS, np.clip(COUNTS - np.random.default_rng(8).integers(0, 3, 60), 0, 8)
    for ci in (0.5, 0.8, 0.95, 0.99):
        _, lo, hi = bootstrap_pass_at_k(COUNTS, 8, 2, n_boot=4000, ci=ci)
        widths.append(hi - lo)
        _, lo, hi = paired_difference(a, b, 8, 8, 2, n_boot=4000, ci=ci)
        paired.append(hi - lo)
    assert all(w2 > 1.2 * w1 for w1, w2 in zip(widths, widths[1:]))
    assert all(w2 > 1.2 * w1 for w1, w2 in zip(paired, paired[1:]))


def test_paired_interval_matches_a_percentile_bootstrap_of_per_problem_differences():
    a, b = COUNTS, np.clip(COUNTS - np.random.default_rng(8).integers(0, 3, 60), 0, 8)
    delta = (a - b) / 8.0  # pass@1 is c / n
    diff, lo, hi = paired_difference(a, b, 8, 8, 1, n_boot=10_000, seed=5, ci=0.9)
    ref = _reference_interval(delta, 0.9)
    tolerance = 0.15 * delta.std() / np.sqrt(len(delta)) + 1 / (8 * 60)  # as above
    assert diff == pytest.approx(delta.mean(), abs=1e-12)
    assert (lo, hi) == pytest.approx((ref.low, ref.high), abs=tolerance)


# -- the run-level tables on synthetic runs with a known answer -------------------------------

def test_paired_table_is_a_minus_b_on_the_same_problems(tmp_path):
    check_paired_table(paired_table, tmp_path)


def check_paired_table(paired_table, tmp_path):
    # temp+rsp has exactly one more correct sample than temp on every problem, across very
    # different difficulties: the difference is +1/4 at k=1 on each problem, so a correctly
    # paired bootstrap has a zero-width interval; records are written in a shuffled order.
    temp = [0, 3, 1, 2, 0, 3, 1, 2, 0, 1]
    counts = {"temp": temp, "temp+rsp": [c + 1 for c in temp]}
    order = list(np.random.default_rng(0).permutation(len(temp)))
    run = counts_run(tmp_path / "r", counts, {"temp": 4, "temp+rsp": 4}, prompt_order=order)
    table = paired_table(run, ks=(1, 2, 4), pairs=[("temp+rsp", "temp")])
    row = table[table["k"] == 1].iloc[0]
    assert (row["a"], row["b"]) == ("temp+rsp", "temp")
    assert row["difference"] == pytest.approx(0.25)
    assert row["ci_low"] == pytest.approx(0.25) and row["ci_high"] == pytest.approx(0.25)
    for k in (2, 4):
        expected = np.mean([comb(4 - c, k) / comb(4, k) - comb(3 - c, k) / comb(4, k)
                            for c in temp])  # pass@k(c + 1) - pass@k(c)
        row = table[table["k"] == k].iloc[0]
        assert row["difference"] == pytest.approx(expected) and expected > 0
        assert row["ci_low"] <= expected <= row["ci_high"]
    reverse = paired_table(run, ks=(1,), pairs=[("temp", "temp+rsp")])
    assert reverse["difference"].iloc[0] == pytest.approx(-0.25)


def test_paired_table_expands_a_deterministic_condition(tmp_path):
    # greedy has one trajectory per problem: it stands for n identical samples.
    counts = {"greedy+rsp": [2, 0, 4, 1], "greedy": [1, 0, 1, 0]}
    run = counts_run(tmp_path / "r", counts, {"greedy+rsp": 4, "greedy": 1})
    row = paired_table(run, ks=(1, 4), pairs=[("greedy+rsp", "greedy")]).set_index("k")
    assert row.loc[1, "difference"] == pytest.approx(np.mean([0.5 - 1, 0, 1 - 1, 0.25 - 0]))
    assert row.loc[4, "difference"] == pytest.approx(np.mean([1 - 1, 0, 1 - 1, 1 - 0]))


def test_passk_table_reports_the_known_counts(tmp_path):
    counts = {"temp": [0, 1, 4, 2], "greedy": [1, 0, 1, 1]}
    run = counts_run(tmp_path / "r", counts, {"temp": 4, "greedy": 1})
    table = passk_table(run, ks=(1, 2, 4)).set_index(["condition", "k"])
    for k in (1, 2, 4):
        expected = np.mean([1 - comb(4 - c, k) / comb(4, k) for c in counts["temp"]])
        assert table.loc[("temp", k), "pass_at_k"] == pytest.approx(expected)
        assert table.loc[("greedy", k), "pass_at_k"] == pytest.approx(0.75)
    assert table.loc[("temp", 1), "accuracy"] == pytest.approx(7 / 16)
    assert table.loc[("temp", 1), "n_problems"] == 4 and table.loc[("greedy", 1), "n"] == 4
    # distinct answers: correct samples share the answer, the others are all different
    assert table.loc[("temp", 1), "distinct_answers"] == pytest.approx(np.mean([4, 4, 1, 3]))


# -- the step probes' arithmetic on hand-made logits and attention patterns -------------------

LOGITS = np.array([[2.0, 1.0, 0.0, -1.0], [0.0, 0.0, 0.0, 0.0], [5.0, 4.5, -3.0, 1.0]])


@pytest.mark.parametrize("temperature", [0.0, 0.5, 1.0, 2.0])
def test_logit_probes_and_collision_match_numpy(temperature):
    from rsp_probe.probes.logits import collision_probability, logit_probes

    values = logit_probes(torch.tensor(LOGITS, dtype=torch.float32))
    probs = _softmax(LOGITS)
    np.testing.assert_allclose(values["entropy"].numpy(), stats.entropy(probs, axis=-1),
                               rtol=1e-5)
    np.testing.assert_allclose(values["top1_prob"].numpy(), probs.max(-1), rtol=1e-6)
    np.testing.assert_allclose(values["margin"].numpy(), [1.0, 0.0, 0.5], atol=1e-6)
    temperatures = torch.full((len(LOGITS), 1), temperature)
    collision = collision_probability(torch.tensor(LOGITS), temperatures).numpy()
    expected = (np.ones(len(LOGITS)) if temperature == 0 else
                (_softmax(LOGITS / temperature) ** 2).sum(-1))
    np.testing.assert_allclose(collision, expected, rtol=1e-5)
    assert collision[1] == pytest.approx(1.0 if temperature == 0 else 0.25)  # uniform over 4


def test_collision_uses_each_rows_own_temperature():
    from rsp_probe.probes.logits import collision_probability

    temperatures = torch.tensor([[0.0], [1.0], [0.5]])
    collision = collision_probability(torch.tensor(LOGITS), temperatures).numpy()
    expected = [1.0, 0.25, (_softmax(LOGITS[2] / 0.5) ** 2).sum()]
    np.testing.assert_allclose(collision, expected, rtol=1e-5)


def test_rsp_attention_probe_records_the_newest_query_mass_per_layer():
    from rsp_probe.backends.base import ATTN_KEY_MASS
    from rsp_probe.probes.attention import RSPAttentionProbe
    from rsp_probe.probes.base import BatchContext

    rng = np.random.default_rng(4)
    keys = np.array([[0, 1, 1, 0, 0], [1, 0, 0, 0, 1]], dtype=np.float32)  # [B=2, T=5]
    context = BatchContext(n_rows=2, max_steps=3, n_layers=2, n_heads=3,
                           device=torch.device("cpu"), rsp_key_mask=torch.tensor(keys),
                           temperature=torch.zeros(2, 1))
    probe = RSPAttentionProbe(context)
    (tap,) = probe.taps()
    assert tap.site == ATTN_KEY_MASS and tap.layers == (0, 1)
    np.testing.assert_array_equal(tap.key_mask.numpy(), keys)
    expected = np.zeros((2, 3, 2, 3))
    for step, n_queries in ((1, 5), (2, 1)):  # prefill sees every query; decode the newest
        probe.begin_step(step)
        for layer in range(2):
            mass = rng.random((2, 3, n_queries)).astype(np.float32)  # [B, H, Q]
            tap.fn(layer, torch.tensor(mass))
            expected[:, step - 1, layer] = mass[:, :, -1]
        probe.check_step()
    np.testing.assert_allclose(probe.values["rsp_attention"].numpy(), expected, rtol=1e-6)
    mass = torch.tensor(rng.random((2, 3, 1), np.float32))
    probe.begin_step(3)
    tap.fn(0, mass)  # layer 1 never delivers
    with pytest.raises(RuntimeError, match=r"got \[1, 0\]"):
        probe.check_step()
    probe.begin_step(3)
    for layer in (0, 1, 1):  # layer 1 delivers twice
        tap.fn(layer, mass)
    with pytest.raises(RuntimeError, match=r"got \[1, 2\]"):
        probe.check_step()


def test_bootstrap_edges_one_problem_one_replicate_and_open_ci():
    assert bootstrap_pass_at_k([2], 4, 1) == (0.5, 0.5, 0.5)  # one problem: no spread
    mean, lo, hi = bootstrap_pass_at_k([0, 4], 4, 1, n_boot=1)  # one replicate: lo == hi
    assert mean == 0.5 and lo == hi and lo in (0.0, 0.5, 1.0)
    for ci in (0.0, 1.0):
        with pytest.raises(ValueError, match="ci must lie in"):
            bootstrap_pass_at_k([1, 2], 4, 1, ci=ci)
    with pytest.raises(ValueError, match="at least one problem"):
        bootstrap_pass_at_k([], 4, 1)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_pass_at_k([1], 4, 1, n_boot=0)


# -- the curve fits with per-step standard errors, and on masses measured as exactly 0 or 1 -----

T_FIT, N_FIT, K_FIT = np.arange(1.0, 41.0), 20.0, 4.0


def _fit_setups():
    """model: (our fit given m and sigma, the reference curve, truth, curve_fit's lower bound)."""
    from rsp_probe.theory import dilution as law
    from rsp_probe.theory import fit as fits

    t, n, k = T_FIT, N_FIT, K_FIT
    return {
        "dilution": (lambda m, s: fits.fit_dilution(t, m, n, k, s),
                     lambda t, delta: law.dilution_mass(t, n, k, delta), [1.0], -np.inf),
        "sink": (lambda m, s: fits.fit_sink(t, m, n, s),
                 lambda t, A, S: law.sink_mass(t, n, A, S), [20.0, 40.0], 0.0),
        "power_law": (lambda m, s: fits.fit_power_law(t, m, n, s),
                      lambda t, a, alpha: law.power_law(t, n, a, alpha), [3.0, 1.2], -np.inf),
        "exponential": (lambda m, s: fits.fit_exponential(t, m, s),
                        lambda t, a, lam, b: law.exponential(t, a, lam, b), [0.3, 0.2, 0.02],
                        0.0),
    }


def _check_against_curve_fit(fit, curve, m, truth, lower, sigma=None, rtol=1e-4):
    """Parameters and standard errors as scipy's curve_fit (absolute_sigma=False) gives them."""
    from scipy.optimize import curve_fit

    params, cov = curve_fit(curve, T_FIT, m, p0=truth, sigma=sigma, bounds=(lower, np.inf),
                            method="trf")
    names = list(fit.params)
    np.testing.assert_allclose([fit.params[p] for p in names], params, rtol=rtol)
    np.testing.assert_allclose([fit.stderr[p] for p in names], np.sqrt(np.diag(cov)), rtol=1e-2)
    return params


@pytest.mark.parametrize("model", ["dilution", "sink", "power_law", "exponential"])
def test_weighted_fits_match_curve_fit_with_sigma(model):
    """Residuals divided by sigma: parameters and errors as curve_fit(sigma=...); R^2 against
    the best weighted constant; AIC from the weighted RSS; compare_models passes sigma on."""
    from rsp_probe.theory.fit import compare_models

    ours, curve, truth, lower = _fit_setups()[model]
    rng = np.random.default_rng(4)
    sigma = 0.001 + 0.01 * rng.random(T_FIT.size)
    m = np.clip(curve(T_FIT, *truth) + sigma * rng.standard_normal(T_FIT.size), 1e-4, 1.0)
    fit = ours(m, sigma)
    params = _check_against_curve_fit(fit, curve, m, truth, lower, sigma)
    chi2 = float((((curve(T_FIT, *params) - m) / sigma) ** 2).sum())
    centre = np.sum(m / sigma**2) / np.sum(1 / sigma**2)
    assert fit.r2 == pytest.approx(1 - chi2 / float((((m - centre) / sigma) ** 2).sum()),
                                   rel=1e-6)
    assert fit.aic == pytest.approx(T_FIT.size * np.log(chi2 / T_FIT.size) + 2 * len(params),
                                    rel=1e-6)
    assert fit.params != ours(m, None).params  # the weights matter on this curve
    same = {f.model: f for f in compare_models(T_FIT, m, N_FIT, K_FIT, sigma)}[model]
    assert same.aic == pytest.approx(fit.aic, rel=1e-9)


def test_a_sink_weight_driven_to_zero_has_an_infinite_error_not_nan():
    """Exponential data leave fit_sink's S at 0 (exp of a log that ran off): its error is
    not identifiable, so inf (as for any unpinned direction), quietly, and A's stays finite."""
    import warnings

    from rsp_probe.theory.dilution import exponential
    from rsp_probe.theory.fit import fit_sink

    rng = np.random.default_rng(4)
    sigma = 0.001 + 0.01 * rng.random(T_FIT.size)
    m = np.clip(exponential(T_FIT, 0.3, 0.15, 0.02) + sigma * rng.standard_normal(T_FIT.size),
                1e-4, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_sink(T_FIT, m, 12, sigma)
    assert fit.params["S"] == 0.0
    assert fit.stderr["S"] == np.inf and np.isfinite(fit.stderr["A"])


def test_one_sigma_for_every_point_moves_only_the_aic():
    from rsp_probe.theory.dilution import dilution_mass
    from rsp_probe.theory.fit import fit_dilution

    t = T_FIT
    m = dilution_mass(t, 20, 4, 0.7) + 0.003 * np.sin(t)
    plain, scaled = fit_dilution(t, m, 20, 4), fit_dilution(t, m, 20, 4, sigma=0.01)
    assert scaled.params["delta"] == pytest.approx(plain.params["delta"], rel=1e-7)
    assert scaled.stderr["delta"] == pytest.approx(plain.stderr["delta"], rel=1e-6)
    assert scaled.r2 == pytest.approx(plain.r2, rel=1e-9)
    assert scaled.aic == pytest.approx(plain.aic - t.size * np.log(0.01**2), rel=1e-9)


@pytest.mark.parametrize("bad", [0.0, -0.01, np.nan, np.inf])
def test_a_sigma_that_is_not_finite_and_positive_is_refused(bad):
    from rsp_probe.theory.dilution import dilution_mass
    from rsp_probe.theory.fit import fit_dilution

    sigma = np.full(T_FIT.size, 0.01)
    sigma[5] = bad
    with pytest.raises(ValueError, match="sigma"):
        fit_dilution(T_FIT, dilution_mass(T_FIT, 20, 4, 0.7), 20, 4, sigma)


@pytest.mark.parametrize("model, last_nonzero", [("dilution", 15), ("sink", 38),
                                                 ("power_law", 15), ("exponential", 15)])
def test_fits_take_masses_measured_as_exactly_zero(model, last_nonzero):
    """Late steps whose mass underflowed to 0 are data like any other (more than half of
    them for the dilution law, whose starting guess is a median)."""
    ours, curve, truth, lower = _fit_setups()[model]
    m = curve(T_FIT, *truth).copy()
    m[T_FIT > last_nonzero] = 0.0
    fit = ours(m, None)
    if model == "exponential":  # the floor b sits on its bound 0: compare the decay only
        from scipy.optimize import curve_fit

        assert fit.params["b"] == pytest.approx(0.0, abs=1e-9)
        params, _ = curve_fit(curve, T_FIT, m, p0=truth, bounds=(lower, np.inf), method="trf")
        np.testing.assert_allclose([fit.params["a"], fit.params["lam"]], params[:2], rtol=1e-5)
    else:
        _check_against_curve_fit(fit, curve, m, truth, lower)


def test_dilution_fit_of_masses_that_are_all_zero_or_one():
    """No inner point to start from: the fit still finds the least-squares delta."""
    from scipy.optimize import minimize_scalar

    from rsp_probe.theory.dilution import dilution_mass
    from rsp_probe.theory.fit import fit_dilution

    t, m = np.arange(1.0, 5.0), np.array([1.0, 1.0, 0.0, 0.0])
    best = minimize_scalar(lambda d: float(((dilution_mass(t, 1, 1, d) - m) ** 2).sum()),
                           bounds=(-10, 10), method="bounded", options={"xatol": 1e-10})
    assert fit_dilution(t, m, 1, 1).params["delta"] == pytest.approx(best.x, abs=1e-4)


def test_power_law_and_exponential_fits_of_a_single_nonzero_mass():
    """One positive point gives no log-log line to start from: the fits still put the curve
    through it and to ~0 after it."""
    from rsp_probe.theory.fit import fit_exponential, fit_power_law

    t, m = np.arange(1.0, 5.0), np.array([0.5, 0.0, 0.0, 0.0])
    for fit in (fit_power_law(t[:3], m[:3], 5), fit_exponential(t, m)):
        np.testing.assert_allclose(fit.predict(t[:3]), m[:3], atol=1e-3)


def test_power_law_fit_keeps_a_negative_exponent():
    """A mass that grows with t: alpha < 0 is a value the fit must be able to report."""
    from rsp_probe.theory.dilution import power_law
    from rsp_probe.theory.fit import fit_power_law

    def curve(t, a, alpha):
        return power_law(t, N_FIT, a, alpha)

    m = np.clip(curve(T_FIT, 0.01, -0.5) + 0.002 * np.cos(T_FIT), 0.0, 1.0)
    fit = fit_power_law(T_FIT, m, N_FIT)
    params = _check_against_curve_fit(fit, curve, m, [0.01, -0.5], -np.inf)
    assert params[1] < -0.4


def test_parameter_errors_do_not_depend_on_the_units_of_the_jacobian():
    """A tiny but full-rank Jacobian (masses are small numbers) gives the finite errors of
    s^2 (J^T J)^-1; scaling J by c scales them by 1/c."""
    from rsp_probe.theory.fit import _stderr_theta

    jac = np.array([[1.0, 0.0], [0.0, 1e-5], [0.0, 0.0], [0.5, 0.0]])
    for scale in (1.0, 1e-6):
        ours = _stderr_theta(jac * scale, rss=0.3, n_points=4)
        cov = np.linalg.inv((jac * scale).T @ (jac * scale)) * 0.3 / (4 - 2)
        np.testing.assert_allclose(ours, np.sqrt(np.diag(cov)), rtol=1e-9)


def test_pass_at_k_intervals_use_the_seed_they_are_given():
    """Against a percentile bootstrap over problems written out with the same seed."""
    from rsp_probe.analysis.pass_at_k import pass_at_k_table

    a, b = COUNTS[:20], np.clip(COUNTS[:20] - 2, 0, 8)

    def direct(per_problem, seed):
        idx = np.random.default_rng(seed).integers(0, 20, size=(500, 20))
        return tuple(np.quantile(per_problem[idx].mean(axis=1), [0.05, 0.95]))

    per_a, per_b = pass_at_k_table(a, 8, 2), pass_at_k_table(b, 8, 2)
    assert direct(per_a, 3) != direct(per_a, 4)  # the seed shows
    for seed in (3, 4):
        ours = bootstrap_pass_at_k(a, 8, 2, n_boot=500, seed=seed, ci=0.9)
        assert ours[1:] == pytest.approx(direct(per_a, seed), abs=1e-12)
        ours = paired_difference(a, b, 8, 8, 2, n_boot=500, seed=seed, ci=0.9)
        assert ours[1:] == pytest.approx(direct(per_a - per_b, seed), abs=1e-12)


def test_pass_at_k_table_takes_one_problem_as_a_plain_number():
    from rsp_probe.analysis.pass_at_k import pass_at_k_table

    np.testing.assert_allclose(pass_at_k_table(3, 8, [1, 2]),
                               [[3 / 8, 1 - comb(5, 2) / comb(8, 2)]], rtol=1e-12)


def test_a_constant_mass_has_no_r2():
    """R^2 = 1 - RSS/TSS is undefined (NaN) when the mass does not vary: TSS = 0."""
    from rsp_probe.theory.fit import fit_dilution

    fit = fit_dilution(np.arange(1.0, 6.0), np.full(5, 0.2), 10, 4)
    assert np.isnan(fit.r2) and np.isfinite(fit.aic)


def test_fits_refuse_steps_before_the_first():
    """t < 1 is refused up front, as the laws refuse it, even where the starting guess would
    already fail on log(n + t - 1) = log(0)."""
    from rsp_probe.theory.fit import fit_dilution, fit_power_law

    t, m = np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.5, 0.4, 0.3, 0.25])
    for fit in (lambda: fit_power_law(t, m, 1), lambda: fit_dilution(t, m, 1, 1)):
        with pytest.raises(ValueError, match="steps t must be >= 1"):
            fit()
