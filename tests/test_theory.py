"""Tests for rsp_probe.theory: closed forms against direct softmax sums, fits on seeded
synthetic data, bootstrap slopes and the first-divergence distribution."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import log_softmax, logsumexp, softmax

from rsp_probe.theory import (
    DivergencePMF,
    collision_hazard,
    collision_hazard_from_logits,
    compare_models,
    dilution_mass,
    distribution_distance,
    divergence_counts,
    envelope,
    exponential,
    first_divergence_pmf,
    fit_dilution,
    fit_exponential,
    fit_greedy_c,
    fit_power_law,
    fit_sink,
    greedy_hazard,
    loglog_slope,
    power_law,
    sink_mass,
)

FAST = settings(max_examples=60, deadline=None)
STEPS = np.arange(1, 301, dtype=np.float64)
N_INPUT, K_RSP = 12, 4

finite = st.floats(allow_nan=False, allow_infinity=False)
n_tokens = st.integers(1, 2000)
k_vectors = st.integers(1, 64)


def rsp_mass_by_softmax(rsp_logits: np.ndarray, other_logits: np.ndarray) -> float:
    """Attention on the RSP keys computed directly from one query's softmax."""
    weights = softmax(np.concatenate([rsp_logits, other_logits]))
    return float(weights[: rsp_logits.size].sum())


def assert_curve_ok(values: np.ndarray) -> None:
    assert np.all(np.isfinite(values))
    assert np.all((values >= 0) & (values <= 1))
    assert np.all(np.diff(values) <= 1e-15)


# --- dilution curves -------------------------------------------------------------------


@FAST
@given(n=n_tokens, k=k_vectors, delta=finite.filter(lambda d: abs(d) <= 60))
def test_dilution_monotone_and_bounded(n: int, k: int, delta: float) -> None:
    assert_curve_ok(dilution_mass(STEPS, n, k, delta))


@FAST
@given(n=n_tokens, a=st.floats(0, 1e6), s=st.floats(0, 1e4))
def test_sink_monotone_and_bounded(n: int, a: float, s: float) -> None:
    assert_curve_ok(sink_mass(STEPS, n, a, s))


@FAST
@given(n=n_tokens, a=st.floats(0, 1), alpha=st.floats(0, 5))
def test_power_law_monotone_and_bounded(n: int, a: float, alpha: float) -> None:
    assert_curve_ok(power_law(STEPS, n, a, alpha))


@FAST
@given(a=st.floats(0, 0.5), lam=st.floats(0, 10), b=st.floats(0, 0.5))
def test_exponential_monotone_and_bounded(a: float, lam: float, b: float) -> None:
    assert_curve_ok(exponential(STEPS, a, lam, b))


@FAST
@given(n=st.integers(1, 50), k=k_vectors, delta=st.floats(-20, 20), t=st.integers(1, 50))
def test_dilution_equals_equal_logit_softmax(n: int, k: int, delta: float, t: int) -> None:
    others = np.zeros(n + t - 1)
    expected = rsp_mass_by_softmax(np.full(k, delta), others)
    assert dilution_mass(t, n, k, delta) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_dilution_exact_with_log_mean_exp_delta() -> None:
    rng = np.random.default_rng(0)
    n, k, t = 9, 5, 7
    rsp, others = rng.normal(0, 3, k), rng.normal(0, 3, n + t - 1)
    delta = (logsumexp(rsp) - np.log(k)) - (logsumexp(others) - np.log(others.size))
    assert dilution_mass(t, n, k, delta) == pytest.approx(rsp_mass_by_softmax(rsp, others))


@pytest.mark.parametrize("delta", [-1e4, -np.inf])
def test_dilution_vanishes_for_very_negative_delta(delta: float) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.all(dilution_mass(STEPS, N_INPUT, K_RSP, delta) == 0.0)


@pytest.mark.parametrize("delta", [1e4, np.inf])
def test_dilution_saturates_for_very_positive_delta(delta: float) -> None:
    # n >= 1 keeps n + t - 1 finite, so an infinite logit advantage takes all the mass.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.all(dilution_mass(STEPS, N_INPUT, K_RSP, delta) == 1.0)


def test_curves_vanish_as_t_grows() -> None:
    far = np.array([1e12, np.inf])
    assert np.all(dilution_mass(far, N_INPUT, K_RSP, 3.0) < 1e-10)
    assert np.all(sink_mass(far, N_INPUT, 50.0, 20.0) < 1e-10)
    assert np.all(power_law(far, N_INPUT, 1.0, 0.5) < 1e-5)
    assert exponential(np.inf, 0.4, 0.1, 0.05) == pytest.approx(0.05)


def test_dilution_hyperbolic_tail() -> None:
    delta, t = 1.3, np.array([1e6, 1e8])
    assert t * dilution_mass(t, N_INPUT, K_RSP, delta) == pytest.approx(
        K_RSP * np.exp(delta), rel=1e-4
    )


def test_sink_reduces_to_dilution_without_sink() -> None:
    delta = 0.7
    assert sink_mass(STEPS, N_INPUT, K_RSP * np.exp(delta), 0.0) == pytest.approx(
        dilution_mass(STEPS, N_INPUT, K_RSP, delta), rel=1e-12
    )


def test_sink_flattens_early_decay() -> None:
    # Same mass at step 1, but the head with a sink loses a smaller fraction per step.
    plain = sink_mass(STEPS, N_INPUT, 10.0, 0.0)
    a_sink = 10.0 * (100.0 + N_INPUT) / N_INPUT  # solves A/(A + S + n) = 10/(10 + n)
    with_sink = sink_mass(STEPS, N_INPUT, a_sink, 100.0)
    assert with_sink[0] == pytest.approx(plain[0])
    assert np.all(with_sink[1:] > plain[1:])


def test_power_law_is_dilution_tail() -> None:
    t = np.array([1e7, 1e9])
    a = K_RSP * np.exp(-1.0)
    assert power_law(t, N_INPUT, a, 1.0) == pytest.approx(
        dilution_mass(t, N_INPUT, K_RSP, -1.0), rel=1e-5
    )


@FAST
@given(
    n=st.integers(1, 40),
    k=st.integers(1, 8),
    t=st.integers(1, 40),
    bound=st.floats(0, 8),
    seed=st.integers(0, 2**32 - 1),
)
def test_envelope_brackets_any_bounded_logits(n: int, k: int, t: int, bound: float, seed: int):
    rng = np.random.default_rng(seed)
    rsp = rng.uniform(-bound, bound, k)
    others = rng.uniform(-bound, bound, n + t - 1)
    lower, upper = envelope(t, n, k, bound)
    mass = rsp_mass_by_softmax(rsp, others)
    assert lower * (1 - 1e-12) <= mass <= upper * (1 + 1e-12)
    delta = rng.uniform(-2 * bound, 2 * bound)
    assert lower <= dilution_mass(t, n, k, delta) <= upper


def test_envelope_is_attained_at_the_corners() -> None:
    n, k, t, bound = 6, 3, 4, 2.5
    lower, upper = envelope(t, n, k, bound)
    rest = n + t - 1
    assert upper == pytest.approx(rsp_mass_by_softmax(np.full(k, bound), np.full(rest, -bound)))
    assert lower == pytest.approx(rsp_mass_by_softmax(np.full(k, -bound), np.full(rest, bound)))


@pytest.mark.parametrize(
    "call",
    [
        lambda: dilution_mass(0, 5, 2, 0.0),
        lambda: dilution_mass(1, 0, 2, 0.0),
        lambda: dilution_mass(1, 5, 0, 0.0),
        lambda: dilution_mass(1, 5, 2, np.nan),
        lambda: sink_mass(1, 5, -1.0, 0.0),
        lambda: sink_mass(1, 5, 1.0, -1.0),
        lambda: envelope(1, 5, 2, -1.0),
        lambda: exponential(1, -0.1, 0.1),
    ],
)
def test_curves_reject_bad_arguments(call) -> None:
    with pytest.raises(ValueError):
        call()


# --- fits ------------------------------------------------------------------------------

NOISE = 0.003
TRUTHS = [
    ("dilution", lambda t: dilution_mass(t, N_INPUT, K_RSP, 1.5), {"delta": 1.5}),
    ("sink", lambda t: sink_mass(t, N_INPUT, 30.0, 40.0), {"A": 30.0, "S": 40.0}),
    ("power_law", lambda t: power_law(t, N_INPUT, 0.8, 0.5), {"a": 0.8, "alpha": 0.5}),
    (
        "exponential",
        lambda t: exponential(t, 0.3, 0.05, 0.05),
        {"a": 0.3, "lam": 0.05, "b": 0.05},
    ),
]
FITTERS = {
    "dilution": lambda t, m: fit_dilution(t, m, N_INPUT, K_RSP),
    "sink": lambda t, m: fit_sink(t, m, N_INPUT),
    "power_law": lambda t, m: fit_power_law(t, m, N_INPUT),
    "exponential": fit_exponential,
}


def noisy(curve, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(curve(STEPS) + rng.normal(0, NOISE, STEPS.size), 0, 1)


@pytest.mark.parametrize(("model", "curve", "truth"), TRUTHS, ids=[row[0] for row in TRUTHS])
@pytest.mark.parametrize("seed", [0, 1])
def test_fit_recovers_parameters(model, curve, truth, seed) -> None:
    fit = FITTERS[model](STEPS, noisy(curve, seed))
    assert fit.model == model and fit.n_points == STEPS.size
    for name, value in truth.items():
        assert abs(fit.params[name] - value) <= 3 * fit.stderr[name], (name, fit)
    assert fit.r2 > 0.95
    assert fit.predict(STEPS) == pytest.approx(curve(STEPS), abs=4 * NOISE)


@pytest.mark.parametrize(("model", "curve", "truth"), TRUTHS, ids=[row[0] for row in TRUTHS])
def test_aic_picks_the_true_model(model, curve, truth) -> None:
    fits = compare_models(STEPS, noisy(curve, 7), N_INPUT, K_RSP)
    assert [fit.aic for fit in fits] == sorted(fit.aic for fit in fits)
    assert fits[0].model == model


def test_fit_to_dict_is_strict_json() -> None:
    # Pure dilution data: the sink size S is not identifiable and its error is infinite.
    fit = fit_sink(STEPS, noisy(TRUTHS[0][1], 0), N_INPUT)
    assert fit.stderr["S"] == np.inf and np.isfinite(fit.stderr["A"])
    assert abs(fit.params["A"] - K_RSP * np.exp(1.5)) <= 3 * fit.stderr["A"]
    payload = json.loads(json.dumps(fit.to_dict(), allow_nan=False))
    assert payload["stderr"]["S"] is None and payload["fixed"] == {"n": N_INPUT}


@pytest.mark.parametrize(
    ("t", "m", "match"),
    [
        (STEPS, np.zeros_like(STEPS), "zero"),
        (np.array([1.0]), np.array([0.2]), "points"),
        (np.array([1.0, 2.0]), np.array([0.2, np.nan]), "finite"),
        (np.array([1.0, 2.0]), np.array([0.2]), "equal length"),
        (np.array([1.0, 2.0]), np.array([0.2, 1.5]), r"\[0, 1\]"),
    ],
)
def test_fits_reject_degenerate_input(t, m, match) -> None:
    for fitter in FITTERS.values():
        with pytest.raises(ValueError, match=match):
            fitter(t, m)


# --- scaling slopes --------------------------------------------------------------------


@pytest.mark.parametrize("grouped", [False, True])
def test_loglog_slope_recovers_two(grouped: bool) -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(1e-3, 0.5, 400)
    y = 3.0 * x**2 * rng.lognormal(0, 0.3, x.size)
    groups = np.repeat(np.arange(40), 10) if grouped else None
    est = loglog_slope(x, y, n_boot=400, seed=1, groups=groups)
    assert est.ci_low < 2.0 < est.ci_high
    assert est.ci_high - est.ci_low < 0.2
    assert est.n_points == x.size
    assert est == loglog_slope(x, y, n_boot=400, seed=1, groups=groups)


def test_loglog_slope_drops_unusable_points_and_matches_polyfit() -> None:
    x = np.array([0.1, 0.2, 0.4, 0.8, 0.0, -1.0, 0.3, np.nan])
    y = np.array([0.01, 0.05, 0.1, 0.7, 0.3, 0.2, 0.0, 0.1])
    est = loglog_slope(x, y, n_boot=50)
    keep = slice(0, 4)
    assert est.n_points == 4
    assert est.slope == pytest.approx(np.polyfit(np.log(x[keep]), np.log(y[keep]), 1)[0])


def test_loglog_slope_rejects_too_few_points() -> None:
    with pytest.raises(ValueError, match="two positive points"):
        loglog_slope([0.1, 0.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="two groups"):
        loglog_slope([0.1, 0.2, 0.3], [1.0, 2.0, 3.0], groups=["a", "a", "a"])


# --- branching -------------------------------------------------------------------------


@FAST
@given(st.lists(st.floats(0, 1), min_size=1, max_size=80))
def test_first_divergence_pmf_sums_to_one(hazards: list[float]) -> None:
    dist = first_divergence_pmf(hazards)
    assert dist.horizon == len(hazards)
    assert np.all(dist.pmf >= 0) and dist.never >= 0
    assert dist.as_array().sum() == pytest.approx(1.0, abs=1e-12)


def test_first_divergence_pmf_closed_form() -> None:
    dist = first_divergence_pmf([0.5, 0.5, 1.0, 0.3])
    np.testing.assert_allclose(dist.pmf, [0.5, 0.25, 0.25, 0.0])
    assert dist.never == 0.0
    assert first_divergence_pmf(np.zeros(5)).never == 1.0
    with pytest.raises(ValueError):
        first_divergence_pmf([0.1, np.nan])


@pytest.mark.parametrize("vocab", [1, 2, 7, 50_000])
def test_collision_hazard_one_hot_and_uniform(vocab: int) -> None:
    one_hot = np.zeros((3, vocab))
    one_hot[:, 0] = 1.0
    np.testing.assert_array_equal(collision_hazard(one_hot), 0.0)
    uniform = np.full((2, vocab), 1.0 / vocab)
    np.testing.assert_allclose(collision_hazard(uniform), 1.0 - 1.0 / vocab, atol=1e-12)


def test_collision_hazard_forms_agree() -> None:
    rng = np.random.default_rng(0)
    logits, other = rng.normal(0, 4, (5, 30)), rng.normal(0, 4, (5, 30))
    tau = 0.7
    p, q = softmax(logits / tau, axis=-1), softmax(other / tau, axis=-1)
    same = collision_hazard(p)
    np.testing.assert_allclose(collision_hazard(sum_sq=(p**2).sum(-1)), same)
    np.testing.assert_allclose(collision_hazard_from_logits(logits, tau), same, atol=1e-12)
    np.testing.assert_allclose(
        collision_hazard_from_logits(logits, tau, other), collision_hazard(p, other=q), atol=1e-12
    )
    # A near-greedy temperature with huge logits: no overflow, almost no disagreement.
    assert collision_hazard_from_logits(1e4 * np.arange(5.0), 1e-3) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        collision_hazard(np.full((2, 3), 0.5))


def test_greedy_hazard_counts_overturned_margins() -> None:
    margins = np.array([[0.1, 2.0, np.nan], [1.0, 0.1, 0.5], [3.0, 3.0, 0.2]])
    masses = np.array([[0.5, 0.5, np.nan], [0.5, 0.5, 0.0], [0.5, np.nan, 0.5]])
    np.testing.assert_allclose(greedy_hazard(margins, masses, c=1.0), [1 / 3, 1 / 2, 1 / 2])
    np.testing.assert_array_equal(greedy_hazard(margins, masses, c=0.0), 0.0)


def test_divergence_counts_and_distance() -> None:
    counts = divergence_counts([1, 3, 3, np.nan, 9], horizon=4)
    np.testing.assert_array_equal(counts, [1, 0, 2, 0, 2])
    observed = DivergencePMF.from_counts(counts)
    assert distribution_distance(observed, observed) == 0.0
    assert distribution_distance([1, 0, 0], [0, 0, 1]) == 1.0
    with pytest.raises(ValueError):
        divergence_counts([0, 2], horizon=4)


def simulate_greedy(rng: np.random.Generator, c: float, n_pairs: int = 400, horizon: int = 60):
    """Margins and masses along the shared prefix (NaN after divergence) and first steps."""
    t = np.arange(1, horizon + 1)
    masses = dilution_mass(t, 10, 4, 1.0)[None] * rng.lognormal(0, 0.2, (n_pairs, horizon))
    margins = rng.exponential(2.0, (n_pairs, horizon))
    diverged = margins < c * masses
    first = np.where(diverged.any(axis=1), diverged.argmax(axis=1) + 1.0, np.nan)
    after = t[None] > np.nan_to_num(first, nan=horizon + 1)[:, None]
    return np.where(after, np.nan, margins), np.where(after, np.nan, masses), first


@pytest.mark.parametrize("max_candidates", [4096, 8])
@pytest.mark.parametrize("c_true", [0.3, 1.0, 3.0])
def test_fit_greedy_c_recovers_c(c_true: float, max_candidates: int) -> None:
    # The same pairs give the margins and the divergences, so the true c reproduces them.
    margins, masses, first = simulate_greedy(np.random.default_rng(1), c_true)
    counts = divergence_counts(first, margins.shape[1])
    fit = fit_greedy_c(margins, masses, counts, max_candidates=max_candidates)
    assert fit.c_low < c_true <= fit.c_high
    assert fit.tv == pytest.approx(0.0, abs=1e-9)
    assert fit.n_trajectories == margins.shape[0]
    json.dumps(fit.to_dict())


# --- the constructed one-layer model of docs/theory.md, section 5 -----------------------


class ConstructedModel:
    """One attention head, no positions, no MLP, no norm, a linear readout (numpy).

    Dimension 0 is a constant every query reads, dimension 1 marks RSP vectors with their
    logit ``delta``; keys read only dimension 1, so every non-RSP logit is 0 and every RSP
    logit is ``delta``. Values ignore both dimensions, so ``delta`` enters only the logits.
    """

    def __init__(self, seed: int, k: int = 4, vocab: int = 30, d: int = 16) -> None:
        rng = np.random.default_rng(seed)
        self.tokens = rng.normal(0, 1, (vocab, d))
        self.tokens[:, :2] = [1.0, 0.0]
        self.rsp = rng.normal(0, 1, (k, d))
        self.rsp[:, 0] = 1.0
        self.w_v = rng.normal(0, 1, (d, d))
        self.w_v[:, :2] = 0.0
        self.w_u = rng.normal(0, 1, (vocab, d))
        self.rng = rng

    def step(self, ids: np.ndarray, delta: float) -> tuple[float, float, float]:
        """(RSP mass, KL(p_rsp || p_base) in nats, TV) for the query at the last of ``ids``."""
        rsp = self.rsp.copy()
        rsp[:, 1] = delta
        others = self.tokens[ids]
        with_rsp = np.concatenate([others[:1], rsp, others[1:]])  # BOS, RSP, rest
        z_rsp, attention = self._logits(with_rsp)
        z_base, _ = self._logits(others)
        log_p, log_q = log_softmax(z_rsp), log_softmax(z_base)
        p = np.exp(log_p)
        mass = float(attention[1 : 1 + rsp.shape[0]].sum())
        return mass, float(p @ (log_p - log_q)), float(0.5 * np.abs(p - np.exp(log_q)).sum())

    def _logits(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores = x[:, 1] * x[-1, 0]  # q . k_j with q reading dim 0 and k_j reading dim 1
        attention = softmax(scores)
        return self.w_u @ (x[-1] + attention @ (x @ self.w_v.T)), attention


@pytest.mark.parametrize("delta", [-3.0, 0.0, 2.5])
def test_constructed_model_mass_is_the_dilution_law(delta: float) -> None:
    model, n, steps = ConstructedModel(0), 6, 60
    ids = model.rng.integers(0, 30, n + steps - 1)  # teacher-forced generated tokens
    masses = [model.step(ids[: n + t - 1], delta)[0] for t in range(1, steps + 1)]
    expected = dilution_mass(np.arange(1, steps + 1), n, model.rsp.shape[0], delta)
    np.testing.assert_allclose(masses, expected, rtol=1e-12)


def test_constructed_model_kl_and_tv_slopes() -> None:
    # Varying delta at a fixed context changes the mass and nothing else (assumption A3).
    model = ConstructedModel(1)
    ids = model.rng.integers(0, 30, 10)
    mass, kl, tv = np.array([model.step(ids, d) for d in np.linspace(-14, -4, 30)]).T
    assert mass.max() < 0.01
    assert loglog_slope(mass, kl, n_boot=100).slope == pytest.approx(2.0, abs=0.01)
    assert loglog_slope(mass, tv, n_boot=100).slope == pytest.approx(1.0, abs=0.01)


def test_theory_does_not_import_torch() -> None:
    code = "import sys, rsp_probe.theory; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_bad_scale_is_named_in_the_error() -> None:
    with pytest.raises(ValueError, match=r"^A \(effective RSP weight\) must be >= 0$"):
        sink_mass(1, 5, -1.0, 0.0)
    with pytest.raises(ValueError, match=r"^a \(power-law scale\) must be >= 0$"):
        power_law(1, 5, -1.0, 1.0)


def test_a_nan_scale_is_refused_and_a_zero_scale_is_zero_mass_without_a_warning() -> None:
    with pytest.raises(ValueError, match="effective RSP weight"):
        sink_mass(1, 5, np.nan, 0.0)
    with pytest.raises(ValueError, match="power-law scale"):
        power_law(1, 5, np.nan, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # log(0) = -inf is meant, not a divide-by-zero warning
        assert sink_mass(1, 5, 0.0, 0.0) == 0.0
        assert power_law(1, 5, 0.0, 1.0) == 0.0


def test_invert_delta_is_the_log_mean_exp_advantage_of_any_logits() -> None:
    """For any logits, the step's delta is logmeanexp(RSP logits) - logmeanexp(the others'),
    with n, t and k broadcast; masses of exactly 0 and 1 give -inf and +inf, silently."""
    from rsp_probe.theory import invert_delta

    rng = np.random.default_rng(5)
    ns, ts, ks = np.array([3, 7, 12]), np.array([1, 4, 9]), np.array([1, 2, 5])
    masses, deltas = [], []
    for n, t, k in zip(ns, ts, ks):
        rsp, other = rng.normal(0, 2, k), rng.normal(0, 2, n + t - 1)
        masses.append(softmax(np.concatenate([rsp, other]))[:k].sum())
        deltas.append(logsumexp(rsp) - np.log(k) - logsumexp(other) + np.log(n + t - 1))
    np.testing.assert_allclose(invert_delta(masses, ts, ns, ks), deltas, rtol=1e-9, atol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert invert_delta([0.0, 1.0], [1, 2], 5, 2).tolist() == [-np.inf, np.inf]
    for m, k in [(-0.1, 2), (1.1, 2), (np.nan, 2), (0.5, 0), (0.5, -1), (0.5, np.nan)]:
        with pytest.raises(ValueError, match="masses must lie" if k == 2 else "k \\(number"):
            invert_delta(m, 1, 5, k)


@pytest.mark.parametrize("model", ["dilution", "sink", "power_law", "exponential"])
def test_refit_on_new_data_is_a_fresh_fit_of_the_same_law(model) -> None:
    """A bootstrap refit starts from the old optimum but must land where a cold fit of the
    new data, with the same constants and weights, lands."""
    from rsp_probe.theory.fit import refit

    rng = np.random.default_rng(6)
    t = np.arange(1.0, 31.0)
    sigma = 0.002 + 0.01 * rng.random(t.size)
    first = dilution_mass(t, 10, 4, 0.7) * np.exp(0.05 * rng.standard_normal(t.size))
    again = dilution_mass(t, 12, 4, 0.4) * np.exp(0.05 * rng.standard_normal(t.size))
    fresh = {"dilution": lambda m, s: fit_dilution(t, m, 12, 4, s),
             "sink": lambda m, s: fit_sink(t, m, 12, s),
             "power_law": lambda m, s: fit_power_law(t, m, 12, s),
             "exponential": lambda m, s: fit_exponential(t, m, s)}[model]
    for s in (sigma, None):
        old, cold = fresh(first, s), fresh(again, s)
        warm = refit(old, t, again, s)
        assert (warm.model, warm.fixed, warm.n_points) == (model, cold.fixed, t.size)
        for name, value in cold.params.items():
            assert warm.params[name] == pytest.approx(value, rel=1e-4, abs=1e-8)
            assert warm.stderr[name] == pytest.approx(cold.stderr[name], rel=1e-3, abs=1e-8)
        assert (warm.r2, warm.aic) == pytest.approx((cold.r2, cold.aic), rel=1e-6)


def test_refit_keeps_the_exponential_floor_non_negative() -> None:
    """Fast decay to exactly zero, where an unconstrained floor b would go below zero."""
    from rsp_probe.theory.fit import refit

    t = np.arange(1.0, 31.0)
    m = np.clip(0.4 * np.exp(-0.15 * (t - 1)) - 0.03, 0.0, None)
    start = fit_exponential(t, np.clip(0.3 * np.exp(-0.1 * (t - 1)), 0.0, None) + 0.01)
    warm, cold = refit(start, t, m), fit_exponential(t, m)
    assert all(value >= 0 for value in warm.params.values())
    for name, value in cold.params.items():
        assert warm.params[name] == pytest.approx(value, rel=1e-4, abs=1e-8)
