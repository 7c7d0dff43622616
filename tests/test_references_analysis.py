"""Analyses and figure data on synthetic runs written by the test, so each reported number is
known in advance: dilution fits recover the law's delta with the right n, the entropy and
Pass@N figures plot the means and pass@k values the runs were built to have, and the
per-prompt bootstrap weighs prompts equally."""

from __future__ import annotations

import json
from math import comb

import numpy as np
import pytest
from scipy.optimize import curve_fit
from synthetic_runs import counts_run, record, write_run

from rsp_probe.analysis.attention import dilution_fits, saved_or_fitted
from rsp_probe.analysis.passk import default_pairs, passk_table
from rsp_probe.analysis.stats import bootstrap_mean, format_ci, summarise_by_step, wide_table
from rsp_probe.analysis.tables import DILUTION_FILE, PASSK_FILE
from rsp_probe.runs import open_run
from rsp_probe.theory.common_delta import fit_common_delta
from rsp_probe.theory.dilution import dilution_mass

PAPER = {"law": "gaussian", "sigma_scale": 1.0, "placement": "suffix", "fixed_draw": False}


def _attention_run(out, lengths: list[int], k: int, deltas: dict[int, float], steps: int = 30):
    """One prompt per entry of `lengths` (its token count) plus k RSP positions; layer l's
    heads carry exactly the dilution-law mass with delta = deltas[l] and the prompt's own n,
    every step."""
    t = np.arange(1, steps + 1)
    records, values = [], {}
    for j, n_prompt in enumerate(lengths):
        mass = np.stack([dilution_mass(t, n_prompt, k, deltas[layer])
                         for layer in sorted(deltas)], axis=1)  # [S, L]
        r = record(f"k{k}", f"p{j}", 0, rsp_tokens=k)
        r.update(prompt_token_ids=list(range(n_prompt)),
                 rsp_positions=list(range(n_prompt, n_prompt + k)))
        records.append(r)
        values[r["id"]] = {"rsp_attention": np.repeat(mass[:, :, None], 2, axis=2)}  # 2 heads
    return write_run(out, {"command": "attention", **PAPER}, records, values)


def test_dilution_fits_recover_delta_with_each_trajectory_its_own_prompt_length(tmp_path):
    """Prompts of 8 to 90 tokens that follow the law exactly: the joint fit, each trajectory
    with its own n, recovers delta and its drawn curve is the observed mean. A fit to the
    mean curve with the mean n (the old fit) misses delta by far more than the tolerance."""
    lengths = [8, 20, 45, 90]
    run = _attention_run(tmp_path / "r", lengths, k=4, deltas={0: 1.5, 1: -1.0})
    fits = dilution_fits(run, n_boot=50)["k4"]
    assert fits["k"] == 4 and (fits["n_min"], fits["n_max"]) == (8.0, 90.0)  # RSP excluded
    t = np.arange(1, 31)
    for layer, delta in (("0", 1.5), ("1", -1.0)):
        entry = fits["layers"][layer]
        assert entry["delta"] == pytest.approx(delta, abs=1e-5)
        assert entry["ci"][0] <= entry["delta"] <= entry["ci"][1]
        assert entry["n_trajectories"] == 4 and entry["rmse"] < 1e-6
        assert entry["steps"] == t.tolist()
        observed = np.mean([dilution_mass(t, n, 4, delta) for n in lengths], axis=0)
        np.testing.assert_allclose(entry["fitted"], observed, atol=1e-6)
        np.testing.assert_allclose(entry["mass"], observed, atol=1e-6)
        (averaged,), _ = curve_fit(lambda s, d: dilution_mass(s, np.mean(lengths), 4, d), t,
                                   observed, p0=[0.0])
        assert abs(averaged - delta) > 0.05  # the averaged-curve fit is biased here


def test_saved_dilution_fits_of_an_older_kind_are_recomputed(tmp_path):
    run = _attention_run(tmp_path / "r", [10, 30, 50], k=4, deltas={0: 0.5})
    (run.path / DILUTION_FILE).write_text(json.dumps(
        {"k4": {"k": 4, "n": 30.0, "layers": {"0": {"best": "dilution", "fits": []}}}}))
    fits = saved_or_fitted(open_run(run.path))
    assert fits["k4"]["layers"]["0"]["delta"] == pytest.approx(0.5, abs=1e-5)


def test_common_delta_interval_holds_its_estimate_on_noisy_masses():
    rng = np.random.default_rng(3)
    n = np.repeat(rng.integers(10, 80, size=12), 20).astype(float)
    t = np.tile(np.arange(1, 21), 12).astype(float)
    m = np.clip(dilution_mass(t, n, 16, 0.3) + rng.normal(0, 0.05, t.size), 0, 1)
    fit = fit_common_delta(m, t, n, 16, np.repeat(np.arange(12), 20), n_boot=200)
    assert fit["ci"][0] < fit["delta"] < fit["ci"][1]
    assert fit["ci"][0] < 0.3 < fit["ci"][1] and fit["ci"][1] - fit["ci"][0] < 0.5


def test_summarise_by_step_averages_prompts_first(tmp_path):
    # prompt p0 has 3 trajectories at value 1, p1 one trajectory at value 0: the prompt-level
    # mean is 0.5 (a trajectory-level mean would say 0.75)
    frame_rows = [{"prompt_id": "p0", "condition": "c", "probe": "entropy", "step": 1,
                   "value": 1.0}] * 3 + [{"prompt_id": "p1", "condition": "c",
                                          "probe": "entropy", "step": 1, "value": 0.0}]
    import pandas as pd

    summary = summarise_by_step(pd.DataFrame(frame_rows), steps=(1,))
    row = summary.iloc[0]
    assert row["mean"] == 0.5 and row["n_prompts"] == 2
    assert (row["ci_low"], row["ci_high"]) == (0.0, 1.0)


def test_bootstrap_mean_matches_a_direct_percentile_bootstrap():
    from scipy import stats

    values = np.random.default_rng(3).exponential(size=50)
    mean, lo, hi = bootstrap_mean(np.append(values, np.nan), n_boot=10_000, ci=0.8)
    ref = stats.bootstrap((values,), np.mean, n_resamples=10_000, confidence_level=0.8,
                          method="percentile", random_state=np.random.default_rng(1))
    tolerance = 0.15 * values.std() / np.sqrt(values.size)
    assert mean == pytest.approx(values.mean())  # the nan is dropped
    assert (lo, hi) == pytest.approx(tuple(ref.confidence_interval), abs=tolerance)
    assert all(np.isnan(bootstrap_mean([np.nan])))


def _entropy_run(out):
    """k0 and k4 on three prompts, two samples each; entropy = base + step / 10 with base
    0.1 * prompt index for k0 and 1 + 0.1 * prompt index for k4, sample 1 adding 0.2."""
    records, values = [], {}
    for k in (0, 4):
        for j in range(3):
            for sample in range(2):
                r = record(f"k{k}", f"p{j}", sample, rsp_tokens=k)
                records.append(r)
                base = (1.0 if k else 0.0) + 0.1 * j + 0.2 * sample
                values[r["id"]] = {"entropy": base + np.arange(1, 6) / 10}
    return write_run(out, {"command": "entropy", **PAPER}, records, values)


def test_entropy_figure_plots_the_known_means(tmp_path):
    from rsp_probe.figures import entropy

    df = entropy.data([_entropy_run(tmp_path / "r")])
    assert sorted(df["condition"].unique()) == ["k0", "k4"]
    for row in df.itertuples():
        expected = (1.0 if row.k == 4 else 0.0) + 0.1 + 0.1 + row.x / 10  # mean j 0.1, sample 0.1
        assert row.y == pytest.approx(expected, abs=1e-6)
        assert row.ci_low <= row.y <= row.ci_high and row.n_prompts == 3
        assert row.label == f"k={row.k}"  # the sample size is in the caption
    assert sorted(df["x"].unique()) == [1, 2, 3, 4, 5]


def test_passk_figure_plots_the_known_pass_at_k(tmp_path):
    from rsp_probe.figures import passk

    counts = {"temp": [0, 1, 4, 2], "rsp+temp": [1, 1, 3, 2]}
    staged = counts_run(tmp_path / "counts", counts, {"temp": 4, "rsp+temp": 4})
    run = counts_run(tmp_path / "r", counts, {"temp": 4, "rsp+temp": 4},
                     config={"conditions": ["rsp+temp", "temp"]},
                     tables={PASSK_FILE: passk_table(staged, ks=(1, 2, 4))})
    df = passk.data([run])
    levels = df[df["series"] == "level"]
    assert levels["condition"].tolist()[:3] == ["rsp+temp"] * 3  # the command's order
    for row in levels.itertuples():
        expected = np.mean([1 - comb(4 - c, row.x) / comb(4, row.x)
                            for c in counts[row.condition]])
        assert row.y == pytest.approx(expected)
        assert row.n_prompts == 4 and row.n == 4
        assert row.ci_low <= row.y <= row.ci_high
    gains = df[df["series"] == "gain"]  # rsp+temp minus temp, problem by problem
    assert sorted(gains["x"]) == [1, 2, 4]
    for row in gains.itertuples():
        expected = np.mean([comb(4 - b, row.x) / comb(4, row.x)
                            - comb(4 - a, row.x) / comb(4, row.x)
                            for a, b in zip(counts["rsp+temp"], counts["temp"])])
        assert row.y == pytest.approx(expected)
        assert row.ci_low <= row.y <= row.ci_high


def test_default_pairs_match_each_rsp_condition_to_its_counterpart():
    conditions = ["temp", "rsp+temp", "greedy", "greedy+rsp", "rsp+top_p", "k4"]
    assert default_pairs(conditions) == [("rsp+temp", "temp"), ("greedy+rsp", "greedy")]
    assert default_pairs(["temp+rsp", "temp"]) == [("temp+rsp", "temp")]
    assert default_pairs(["rsp"]) == []
    # the counterpart may itself have several parts, in any order
    assert default_pairs(["top_p+temp", "temp+rsp+top_p"]) == [("temp+rsp+top_p", "top_p+temp")]


def test_summary_tables_print_the_numbers_they_are_given():
    import pandas as pd

    assert format_ci(0.12345, 0.1, 0.2) == "0.123 [0.100, 0.200]"
    assert format_ci(1.5, 1.25, 1.75, digits=1) == "1.5 [1.2, 1.8]"
    assert format_ci(np.nan, np.nan, np.nan) == "-"
    summary = pd.DataFrame({"condition": ["k0", "k0", "k4"], "step": [1, 2, 1],
                            "mean": [0.5, 0.25, 1.0], "ci_low": [0.4, 0.2, 0.9],
                            "ci_high": [0.6, 0.3, 1.1]})
    lines = wide_table(summary, digits=2).splitlines()
    assert lines[0].split() == ["step", "1", "step", "2"]
    assert lines[1].split() == ["condition"]
    assert lines[2].split() == ["k0", "0.50", "[0.40,", "0.60]", "0.25", "[0.20,", "0.30]"]
    assert lines[3].split() == ["k4", "1.00", "[0.90,", "1.10]", "-"]
    assert wide_table(summary.iloc[:0]) == "(no data)"
    by_probe = wide_table(summary.rename(columns={"condition": "probe"}), row="probe",
                          column="step")
    assert by_probe.splitlines()[0].split() == ["step", "1", "step", "2"]
    assert by_probe.splitlines()[2].split()[1:4] == ["0.500", "[0.400,", "0.600]"]  # 3 digits


def test_reported_intervals_are_reproducible_with_the_default_seed():
    from rsp_probe.analysis.pass_at_k import bootstrap_pass_at_k, paired_difference

    counts = [0, 3, 1, 4, 2, 2, 0, 4]
    others = [1, 3, 0, 4, 4, 2, 1, 3]
    assert bootstrap_pass_at_k(counts, 4, 2) == bootstrap_pass_at_k(counts, 4, 2)
    assert paired_difference(counts, others, 4, 4, 1) == paired_difference(counts, others,
                                                                            4, 4, 1)
    values = np.random.default_rng(0).random(12)
    assert bootstrap_mean(values) == bootstrap_mean(values)
    import pandas as pd

    frame = pd.DataFrame({"prompt_id": [f"p{i}" for i in range(12)], "condition": "c",
                          "probe": "entropy", "step": 1, "value": values})
    pd.testing.assert_frame_equal(summarise_by_step(frame), summarise_by_step(frame))


def test_bootstrap_mean_of_one_value_is_that_value():
    assert bootstrap_mean([2.0]) == (2.0, 2.0, 2.0)
    assert all(np.isnan(bootstrap_mean([])))


def test_passk_tables_keep_the_run_order_and_skip_only_impossible_k(tmp_path):
    # temp has 4 samples, rsp+temp only 2: k=4 exists for temp alone; ks are not sorted
    counts = {"temp": [1, 2, 4], "rsp+temp": [1, 0, 2]}
    run = counts_run(tmp_path / "r", counts, {"temp": 4, "rsp+temp": 2})
    table = passk_table(run, ks=(1, 4, 2))
    assert list(zip(table["condition"], table["k"])) == [  # conditions by name
        ("rsp+temp", 1), ("rsp+temp", 2), ("temp", 1), ("temp", 4), ("temp", 2)]
    assert table.iloc[1]["pass_at_k"] == pytest.approx(np.mean([1, 0, 1]))
    from rsp_probe.analysis.passk import paired_table

    pairs = [("missing", "temp"), ("rsp+temp", "missing"), ("rsp+temp", "temp")]
    paired = paired_table(run, ks=(4, 1, 2), pairs=pairs)
    assert list(zip(paired["a"], paired["k"])) == [("rsp+temp", 1), ("rsp+temp", 2)]
    assert paired.iloc[0]["difference"] == pytest.approx(np.mean([0.5 - 0.25, 0 - 0.5, 1 - 1]))


# -- the dilution-law fits at their edges -------------------------------------------------------

def test_fits_need_only_one_point_more_than_their_parameters():
    from rsp_probe.theory.fit import fit_dilution, fit_exponential, fit_power_law, fit_sink

    t = np.arange(1.0, 6.0)
    m = dilution_mass(t, 10, 4, 0.5)
    assert fit_dilution(t[:2], m[:2], 10, 4).n_points == 2
    assert fit_sink(t[:3], m[:3], 10).n_points == 3
    assert fit_power_law(t[:3], m[:3], 10).n_points == 3
    assert fit_exponential(t[:4], m[:4]).n_points == 4


def test_dilution_fit_recovers_a_negative_delta():
    from rsp_probe.theory.fit import fit_dilution

    t = np.arange(1.0, 41.0)
    fit = fit_dilution(t, dilution_mass(t, 30, 2, -2.0), 30, 2)
    assert fit.params["delta"] == pytest.approx(-2.0, abs=1e-5)


def test_sink_fit_survives_saturated_masses():
    from rsp_probe.theory.fit import fit_sink

    t = np.arange(1.0, 7.0)
    fit = fit_sink(t, np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.5]), 5)  # one inner point: no line
    assert np.isfinite(fit.aic) and fit.params["A"] > 0 and fit.params["S"] > 0


def test_exponential_fit_keeps_every_parameter_non_negative():
    from rsp_probe.theory.fit import fit_exponential

    # fast decay to exactly zero: an unconstrained fit would put the floor b below zero
    t = np.arange(1.0, 31.0)
    m = np.clip(0.4 * np.exp(-0.15 * (t - 1)) - 0.03, 0.0, None)
    fit = fit_exponential(t, m)
    assert all(value >= 0 for value in fit.params.values())
    assert fit.params["b"] == pytest.approx(0.0, abs=1e-9)


def _noisy(curve, t, seed=0):
    return np.clip(curve + np.random.default_rng(seed).normal(0, 0.004, t.size), 1e-4, 1.0)


@pytest.mark.parametrize("model", ["dilution", "sink", "power_law", "exponential"])
def test_fit_params_errors_r2_and_aic_match_scipy_curve_fit(model):
    """Against scipy.optimize.curve_fit on natural parameters: its pcov is s^2 (J^T J)^-1
    with s^2 = RSS / (N - p), which the delta method reproduces from log-space fits."""
    from scipy.optimize import curve_fit

    from rsp_probe.theory import dilution as law
    from rsp_probe.theory import fit as fits

    t, n, k = np.arange(1.0, 41.0), 20.0, 4.0
    setups = {  # model: (our fit, reference curve, truth, lower bounds)
        "dilution": (lambda m: fits.fit_dilution(t, m, n, k),
                     lambda t, delta: law.dilution_mass(t, n, k, delta), [1.0], -np.inf),
        "sink": (lambda m: fits.fit_sink(t, m, n),
                 lambda t, A, S: law.sink_mass(t, n, A, S), [8.0, 5.0], 0.0),
        "power_law": (lambda m: fits.fit_power_law(t, m, n),
                      lambda t, a, alpha: law.power_law(t, n, a, alpha), [3.0, 1.2], -np.inf),
        "exponential": (lambda m: fits.fit_exponential(t, m),
                        lambda t, a, lam, b: law.exponential(t, a, lam, b), [0.3, 0.2, 0.02],
                        0.0),
    }
    ours, curve, truth, lower = setups[model]
    m = _noisy(curve(t, *truth), t)
    fit = ours(m)
    params, cov = curve_fit(curve, t, m, p0=truth, bounds=(lower, np.inf), method="trf")
    names = list(fit.params)
    np.testing.assert_allclose([fit.params[p] for p in names], params, rtol=1e-4)
    np.testing.assert_allclose([fit.stderr[p] for p in names], np.sqrt(np.diag(cov)), rtol=1e-2)
    rss = float(((curve(t, *params) - m) ** 2).sum())
    assert fit.r2 == pytest.approx(1 - rss / ((m - m.mean()) ** 2).sum(), rel=1e-6)
    assert fit.aic == pytest.approx(t.size * np.log(rss / t.size) + 2 * len(names), rel=1e-6)
    assert fit.n_points == t.size and 0.5 < fit.r2 < 1.0


def test_curves_and_fits_refuse_nan_inputs():
    from rsp_probe.theory import dilution as law
    from rsp_probe.theory.fit import fit_dilution

    nan = float("nan")
    calls = [lambda: law.dilution_mass([1.0, nan], 10, 4, 0.0),
             lambda: law.dilution_mass(1.0, nan, 4, 0.0),
             lambda: law.dilution_mass(1.0, 10, nan, 0.0),
             lambda: law.sink_mass(1.0, 10, 2.0, nan),
             lambda: law.exponential([nan], 0.5, 0.1),
             lambda: law.exponential([0.5], 0.5, 0.1),
             lambda: law.exponential([1.0], 0.5, -0.1),
             lambda: law.exponential([1.0], 0.5, 0.1, -0.1),
             lambda: fit_dilution([1.0, 2.0, 3.0], [0.5, nan, 0.2], 10, 4),
             lambda: fit_dilution([1.0, 2.0, 3.0], [0.5, 0.3, -0.2], 10, 4)]
    for call in calls:
        with pytest.raises(ValueError):
            call()
    assert law.exponential(1.0, 0.5, 0.1) == pytest.approx(0.5)  # the floor b defaults to 0
    t = np.arange(1.0, 4.0)
    assert law.exponential(t, 0.5, 0.1, 0.2) == pytest.approx(0.2 + 0.5 * np.exp(-0.1 * (t - 1)))
    fit = fit_dilution(t, [1.0, 1.0, 0.5], 10, 4)  # a mass of exactly 1 is allowed
    assert fit.n_points == 3


def test_summaries_of_a_saved_run_hold_only_the_probes_and_steps_it_has(tmp_path):
    """Read back from a run directory with a second probe stored: only the probe asked for,
    one row per condition and step, no empty groups."""
    from rsp_probe.analysis.stats import per_prompt_mean
    from rsp_probe.analysis.summaries import probe_frame

    records, values = [], {}
    for j in range(2):
        for condition in ("k0", "k4"):
            r = record(condition, f"p{j}", 0)
            records.append(r)
            values[r["id"]] = {"entropy": np.full(3, j + (condition == "k4")),
                               "top1_prob": np.full(3, 0.5)}
    run = write_run(tmp_path / "r", {"command": "entropy", **PAPER}, records, values)
    frame = probe_frame(run, ["entropy"])
    summary = summarise_by_step(frame, steps=(1, 2))
    assert sorted(zip(summary["condition"], summary["probe"], summary["step"])) == [
        ("k0", "entropy", 1), ("k0", "entropy", 2), ("k4", "entropy", 1), ("k4", "entropy", 2)]
    assert summary["n_prompts"].eq(2).all()
    np.testing.assert_allclose(summary.sort_values(["condition", "step"])["mean"],
                               [0.5, 0.5, 1.5, 1.5])
    means = per_prompt_mean(frame[frame["condition"] == "k4"], ["condition", "probe"])
    assert len(means) == 2 and not means["value"].isna().any()


def test_summaries_use_the_seed_they_are_given():
    import pandas as pd

    values = np.array([0.0, 1.0, 3.0, 7.0, 2.5, 11.0, 4.2, 6.6])
    frame = pd.DataFrame([{"prompt_id": f"p{j}", "condition": "c", "probe": "entropy",
                           "step": 1, "value": v} for j, v in enumerate(values)])

    def direct(seed):  # a percentile bootstrap over prompts, written out
        idx = np.random.default_rng(seed).integers(0, len(values), size=(2000, len(values)))
        return tuple(np.quantile(values[idx].mean(axis=1), [0.025, 0.975]))

    assert direct(0) != direct(1) and direct(0) != direct(5)  # the seed shows
    for seed in (0, 5):
        row = summarise_by_step(frame, steps=(1,), seed=seed).iloc[0]
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(direct(seed), abs=1e-12)
        assert bootstrap_mean(values, seed=seed)[1:] == pytest.approx(direct(seed), abs=1e-12)
    row = summarise_by_step(frame, steps=(1,)).iloc[0]  # the default seed is 0
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(direct(0), abs=1e-12)


def test_an_envelope_of_zero_width_is_the_equal_logit_law():
    from rsp_probe.theory.dilution import envelope

    t = np.arange(1, 6)
    low, high = envelope(t, 10, 4, 0.0)
    np.testing.assert_allclose(low, 4 / (4 + 10 + t - 1))
    np.testing.assert_allclose(high, low)


def test_passk_table_leaves_ungraded_samples_and_problems_out(tmp_path):
    """Problem a: 4 graded, 2 right; b: 1 graded (right) + 3 ungraded; c: all 4 ungraded.
    Condition `lost` was never graded at all: it gets no rows, and no error."""
    verdicts = {"a": [True, False, True, False], "b": [True, None, None, None],
                "c": [None, None, None, None]}
    records = []
    for condition in ("temp", "lost"):
        for p, vs in verdicts.items():
            for i, v in enumerate(vs if condition == "temp" else [None] * 4):
                r = record(condition, p, i, correct=v, answer=None if v is None else str(i))
                r["grade_error"] = "timed out" if v is None else None
                records.append(r)
    run = write_run(tmp_path / "r", {"command": "passk"}, records)
    table = passk_table(run, ks=(1, 2))
    assert set(table["condition"]) == {"temp"}
    one, two = (table.set_index("k").loc[k] for k in (1, 2))
    # accuracy over the problems with any graded sample: (2/4 + 1/1) / 2
    assert one["accuracy"] == pytest.approx(0.75) and two["accuracy"] == pytest.approx(0.75)
    assert one["n_problems"] == 2 and two["n_problems"] == 1  # b has 1 graded sample < 2
    assert one["pass_at_k"] == pytest.approx((2 / 4 + 1.0) / 2)
    assert two["pass_at_k"] == pytest.approx(1 - comb(2, 2) / comb(4, 2))
    assert one["ungraded"] == two["ungraded"] == 3 + 4


def test_percentile_interval_defaults_to_95_percent_and_keeps_the_axis():
    from rsp_probe.analysis.stats import percentile_interval

    draws = np.random.default_rng(2).normal(size=(400, 3)) * [1.0, 2.0, 5.0]
    assert percentile_interval(draws[:, 0]) == pytest.approx(
        tuple(np.quantile(draws[:, 0], [0.025, 0.975])), abs=1e-12)
    low, high = percentile_interval(draws, 0.8, axis=0)
    np.testing.assert_allclose(low, np.quantile(draws, 0.1, axis=0), rtol=1e-12)
    np.testing.assert_allclose(high, np.quantile(draws, 0.9, axis=0), rtol=1e-12)


def test_window_summaries_average_steps_then_trajectories_then_prompts():
    """Early (steps 1-3), middle (4-16) and late (each trajectory's own last 10 steps), each a
    mean over the trajectory's steps, then over a prompt's trajectories, then a percentile
    bootstrap over prompts, all written out here with loops."""
    import pandas as pd

    from rsp_probe.analysis.stats import summarise_windows

    rows, per_prompt = [], {}
    for c, condition in enumerate(["k4", "base"]):
        for p in range(5):
            means = {"early": [], "middle": [], "late": []}
            for s, length in enumerate([20 + p, 26 - 2 * p]):
                values = [np.sin(0.3 * step + p + 2 * s) + c for step in range(1, length + 1)]
                rows += [{"condition": condition, "probe": "entropy", "prompt_id": f"p{p}",
                          "trajectory": f"{condition}-p{p}-s{s}", "step": step, "value": v}
                         for step, v in enumerate(values, start=1)]
                means["early"].append(np.mean(values[:3]))
                means["middle"].append(np.mean(values[3:16]))
                means["late"].append(np.mean(values[-10:]))
            for window, m in means.items():
                per_prompt.setdefault((condition, window), []).append(np.mean(m))
    frame = pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # order must not matter
    out = summarise_windows(frame, seed=3, n_boot=300)
    assert list(out.columns) == ["condition", "probe", "window", "mean", "ci_low", "ci_high",
                                 "n_prompts"]
    assert list(zip(out["condition"], out["window"].astype(str))) == [
        (c, w) for c in ("base", "k4") for w in ("early", "middle", "late")]
    by_condition = summarise_windows(frame.drop(columns="probe"), by=("condition",), seed=3,
                                     n_boot=300)
    pd.testing.assert_frame_equal(by_condition, out.drop(columns="probe"))
    for row in out.itertuples():
        values = np.array(per_prompt[(row.condition, str(row.window))])
        idx = np.random.default_rng(3).integers(0, values.size, size=(300, values.size))
        low, high = np.quantile(values[idx].mean(axis=1), [0.025, 0.975])
        assert (row.mean, row.ci_low, row.ci_high) == pytest.approx(
            (values.mean(), low, high), abs=1e-12)
        assert row.n_prompts == 5 and row.probe == "entropy"
