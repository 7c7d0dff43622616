"""The data behind the attention, influence, branching and ablations figures, on synthetic runs
whose values are chosen here: each plotted number equals an independent computation (numpy
means, scipy.optimize.curve_fit, a least-squares line, closed forms), not the analysis code the
figure calls. No model is loaded."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import curve_fit
from synthetic_runs import record, write_run

PAPER = {"law": "gaussian", "sigma_scale": 1.0, "placement": "suffix", "fixed_draw": False}
N_PROMPT, STEPS = 12, 10
T = np.arange(1, STEPS + 1)
PROMPT_FACTOR = np.array([0.95, 1.0, 1.05])  # averages to 1 over the three prompts
HEAD_FACTOR = np.array([0.8, 1.2])  # averages to 1 over the two heads


def _law(t, n, k, delta):
    """The dilution law written out: k e^delta / (k e^delta + n + t - 1)."""
    weight = k * np.exp(delta)
    return weight / (weight + n + t - 1)


def _masses(k: int, deltas: tuple[float, ...]) -> np.ndarray:
    """[step, layer]: layer l carries the law with deltas[l]."""
    return np.stack([_law(T, N_PROMPT, k, d) for d in deltas], axis=1)


def _attention_record(condition: str, j: int, k: int, sample: int = 0) -> dict:
    r = record(condition, f"p{j}", sample, rsp_tokens=k)
    r.update(prompt_token_ids=list(range(N_PROMPT)),
             rsp_positions=list(range(N_PROMPT, N_PROMPT + k)))
    return r


def _head_values(masses: np.ndarray, j: int) -> np.ndarray:
    """[step, layer, head]: prompt j scales every value, the two heads split it unevenly."""
    return masses[:, :, None] * HEAD_FACTOR[None, None, :] * PROMPT_FACTOR[j]


# -- attention ----------------------------------------------------------------------------------

DELTAS = {4: (0.5, 2.0), 16: (-1.0, 1.0)}


@pytest.fixture(scope="module")
def attention_frame(tmp_path_factory):
    from rsp_probe.figures import attention

    records, values = [], {}
    for k, deltas in DELTAS.items():
        for j in range(3):
            r = _attention_record(f"k{k}", j, k)
            records.append(r)
            values[r["id"]] = {"rsp_attention": _head_values(_masses(k, deltas), j)}
    run = write_run(tmp_path_factory.mktemp("attention") / "r", {"command": "attention", **PAPER},
                    records, values)
    return attention.data([run])


@pytest.mark.parametrize("k", sorted(DELTAS))
def test_attention_observed_curves_are_the_head_and_prompt_means(attention_frame, k):
    masses = _masses(k, DELTAS[k])
    observed = attention_frame[(attention_frame["condition"] == f"k{k}")
                               & (attention_frame["series"] == "observed")]
    expected = {layer: masses[:, layer] for layer in range(2)}
    expected[-1] = masses.mean(axis=1)  # every layer and head weighs the same
    assert sorted(observed["layer"].unique()) == [-1, 0, 1]
    for layer, curve in expected.items():
        rows = observed[observed["layer"] == layer].sort_values("x")
        assert rows["x"].tolist() == T.tolist()
        np.testing.assert_allclose(rows["y"], curve, rtol=1e-6)
        assert (rows["ci_low"] <= rows["y"] + 1e-12).all()
        assert (rows["y"] <= rows["ci_high"] + 1e-12).all()
        assert rows["n_prompts"].eq(3).all() and rows["k"].eq(k).all()
        # the prompts differ by +-5%: the CI is not a point
        assert (rows["ci_high"] - rows["ci_low"] > 0.01 * rows["y"]).all()


@pytest.mark.parametrize("k", sorted(DELTAS))
def test_attention_fitted_law_matches_scipy_on_the_mean_curve(attention_frame, k):
    masses = _masses(k, DELTAS[k])
    rows = attention_frame[(attention_frame["condition"] == f"k{k}")
                           & (attention_frame["series"] == "dilution_fit")]
    for layer, curve in {0: masses[:, 0], 1: masses[:, 1], -1: masses.mean(axis=1)}.items():
        fit = rows[rows["layer"] == layer].sort_values("x")
        (delta,), _ = curve_fit(lambda t, d: _law(t, N_PROMPT, k, d), T, curve, p0=[0.0])
        if layer >= 0:  # an exact law: its own delta
            assert delta == pytest.approx(DELTAS[k][layer], abs=1e-6)
        assert fit["delta"].iloc[0] == pytest.approx(delta, abs=1e-4)
        assert (fit["delta_low"] <= fit["delta"]).all()
        assert (fit["delta"] <= fit["delta_high"]).all()
        np.testing.assert_allclose(fit["y"], _law(T, N_PROMPT, k, delta), rtol=1e-4)


def test_attention_draws_no_envelope(attention_frame):
    """The envelope with B taken from the fitted delta was circular (#12): not drawn."""
    assert not attention_frame["series"].str.startswith("envelope").any()


# -- influence ----------------------------------------------------------------------------------

KL_SCALE = np.array([2.0, 3.0, 5.0])  # per prompt: KL = scale * mass^2 exactly


@pytest.fixture(scope="module")
def influence_run(tmp_path_factory):
    """k4 and k16, three prompts, two samples; KL = KL_SCALE[j] * mass^2 at every step, so
    the log-log slope is 2 within a prompt; TV and the entropy shift are simple functions of
    the step, different per sample."""
    records, values = [], {}
    for k, deltas in DELTAS.items():
        for j in range(3):
            for sample in range(2):
                r = _attention_record(f"k{k}", j, k, sample)
                records.append(r)
                heads = _head_values(_masses(k, deltas), j)
                mass = heads.mean(axis=(1, 2))
                values[r["id"]] = {"rsp_attention": heads, "kl": KL_SCALE[j] * mass ** 2,
                                   "tv": (j + 1 + sample) / (10.0 * T),
                                   "entropy_delta": k / 100 - 0.01 * sample * T}
    base = [_attention_record("k0", j, 0) for j in range(3)]
    zero = {r["id"]: {"kl": np.zeros(STEPS), "tv": np.zeros(STEPS),
                      "entropy_delta": np.zeros(STEPS)} for r in base}
    return write_run(tmp_path_factory.mktemp("influence") / "r", {"command": "influence", **PAPER},
                     [*base, *records], {**zero, **values})


def test_influence_step_curves_are_the_prompt_means(influence_run):
    from rsp_probe.figures import influence

    frame = influence.data([influence_run])
    observed = frame[frame["series"] == "observed"]
    assert set(observed["condition"]) == {"k4", "k16"}  # the baseline is not a curve
    for k in DELTAS:
        mass = _masses(k, DELTAS[k]).mean(axis=1) * PROMPT_FACTOR[:, None]  # [prompt, step]
        expected = {
            "kl": (KL_SCALE[:, None] * mass ** 2).mean(axis=0),
            "tv": np.mean([(j + 1.5) / (10.0 * T) for j in range(3)], axis=0),
            "entropy_delta": k / 100 - 0.005 * T,
        }
        for panel, curve in expected.items():
            rows = observed[(observed["condition"] == f"k{k}") & (observed["panel"] == panel)]
            rows = rows.sort_values("x")
            assert rows["x"].tolist() == T.tolist()
            np.testing.assert_allclose(rows["y"], curve, rtol=1e-5, atol=1e-9)
            assert rows["n_prompts"].eq(3).all() and rows["k"].eq(k).all()


def test_influence_scatter_and_slope_match_a_least_squares_line(influence_run):
    from rsp_probe.figures import influence

    frame = influence.data([influence_run])
    points = frame[frame["series"] == "points"]
    assert len(points) == 2 * 3 * 2 * STEPS  # k, prompt, sample, step: no baseline points
    x, y = [], []
    for k in DELTAS:
        for j in range(3):
            mass = _masses(k, DELTAS[k]).mean(axis=1) * PROMPT_FACTOR[j]
            x += [*mass, *mass]
            y += [*(KL_SCALE[j] * mass ** 2)] * 2
    got = points.sort_values(["x", "y"])[["x", "y"]].to_numpy()
    want = np.array(sorted(zip(x, y)))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # log KL = log scale_j + 2 log mass: the pooled least-squares line (prompts differ in
    # intercept and mass) has its own slope, computed here with numpy
    slope = np.polyfit(np.log(x), np.log(y), 1)[0]
    fit = frame[frame["series"] == "fit"]
    assert fit["slope"].iloc[0] == pytest.approx(slope, rel=1e-4)
    assert fit["slope_ci_low"].iloc[0] <= slope <= fit["slope_ci_high"].iloc[0]
    assert fit["n_prompts"].iloc[0] == 3
    theory = frame[frame["series"] == "theory"]
    assert theory["slope"].eq(2.0).all()
    ends = np.log(theory.sort_values("x")[["x", "y"]].to_numpy())
    assert (ends[1, 1] - ends[0, 1]) / (ends[1, 0] - ends[0, 0]) == pytest.approx(2.0)
    # the slope-2 line passes through the centroid of the log points
    lx, ly = np.log(x).mean(), np.log(y).mean()
    assert ends[0, 1] + 2.0 * (lx - ends[0, 0]) == pytest.approx(ly)




# -- ablations ----------------------------------------------------------------------------------

# per run (sigma_scale), per prompt: early entropy of k4 minus k0, and the k4 mass at step 1
SHIFTS = {1.0: np.array([0.1, 0.2, 0.6]), 2.0: np.array([0.5, 0.9, 1.0])}
STEP1_MASS = {1.0: np.array([0.30, 0.20, 0.10]), 2.0: np.array([0.05, 0.15, 0.40])}


def _ablation_run(out, sigma: float):
    """k0 and k4 at one temperature, three prompts. Entropy at steps 1-3 is prompt j's base
    (k0) or base + SHIFTS (k4) give or take a zero-mean wiggle; steps 4-5 hold values no
    early metric may read. rsp_attention at step 1 averages to STEP1_MASS over layers and
    heads, and is 0.9 afterwards."""
    records, values = [], {}
    for j in range(3):
        base = 1.0 + j
        for k in (0, 4):
            r = _attention_record(f"k{k}", j, k)
            records.append(r)
            early = base + (SHIFTS[sigma][j] if k else 0.0) + np.array([-0.05, 0.0, 0.05])
            values[r["id"]] = {"entropy": np.concatenate([early, [50.0, -50.0]])}
            if k:
                heads = np.full((5, 2, 2), 0.9)
                heads[0] = STEP1_MASS[sigma][j] + np.array([[-0.02, 0.0], [0.0, 0.02]])
                values[r["id"]]["rsp_attention"] = heads
    return write_run(out, {"command": "entropy", **PAPER, "sigma_scale": sigma}, records, values)


def test_ablations_plot_the_early_shift_and_mass_of_each_run(tmp_path):
    from rsp_probe.figures import ablations

    runs = [_ablation_run(tmp_path / f"s{sigma:g}", sigma) for sigma in SHIFTS]
    frame = ablations.data(runs)
    assert set(frame["factor"]) == {"sigma_scale"}  # the only factor that differs
    assert set(frame["hue"]) == {"all runs"}
    for metric, truth in (("early_entropy", SHIFTS), ("early_mass", STEP1_MASS)):
        rows = frame[frame["metric"] == metric].set_index("level")
        assert sorted(rows.index) == ["1", "2"]
        for sigma, per_prompt in truth.items():
            row = rows.loc[f"{sigma:g}"]
            assert row["y"] == pytest.approx(per_prompt.mean(), abs=1e-6)
            assert row["ci_low"] <= row["y"] <= row["ci_high"]
            assert row["ci_low"] >= per_prompt.min() - 1e-6
            assert row["ci_high"] <= per_prompt.max() + 1e-6
            assert row["n_prompts"] == 3 and row["condition"] == "k4"
            assert row["x"] == (0 if sigma == 1.0 else 1)


# -- branching ----------------------------------------------------------------------------------

# three samples per prompt, tokens chosen so every prefix count and divergence is known
TOKENS = {"p0": [[1, 2, 3], [1, 2, 4], [1, 5, 6]], "p1": [[7, 8, 9], [7, 8, 9], [7, 8, 1]]}
# distinct prefixes / 3 at steps 1-3: p0 1/3, 2/3, 3/3; p1 1/3, 1/3, 2/3
FRACTION = {1: 1 / 3, 2: (2 / 3 + 1 / 3) / 2, 3: (1 + 2 / 3) / 2}
# first divergence of the 6 pairs: p0 at 3, 2, 2; p1 never, 3, 3 -> steps 1, 2, 3, never
DIVERGENCE = np.array([0, 2, 3, 1]) / 6


def _branching_run(out):
    from rsp_probe.analysis.branching import branching_frame
    from rsp_probe.analysis.tables import BRANCHING_FILE

    records, values = [], {}
    for prompt, samples in TOKENS.items():
        for sample, tokens in enumerate(samples):
            r = record("temp", prompt, sample)
            r.update(generated_token_ids=tokens, n_steps=len(tokens))
            records.append(r)
            values[r["id"]] = {"entropy": np.array([0.5, 1.0, 1.5]) + sample}
    config = {"command": "branching", **PAPER}
    staged = write_run(out.with_name("staged"), config, records, values)
    return write_run(out, config, records, values,
                     tables={BRANCHING_FILE: branching_frame(staged)})


def test_branching_fractions_and_divergence_are_counted_from_the_tokens(tmp_path):
    from rsp_probe.figures import branching

    frame = branching.data([_branching_run(tmp_path / "r")])
    fraction = frame[frame["panel"] == "prefix_fraction"].sort_values("x")
    assert fraction["x"].tolist() == [1, 2, 3]
    np.testing.assert_allclose(fraction["y"], [FRACTION[s] for s in (1, 2, 3)])
    assert fraction["n_prompts"].eq(2).all()
    observed = frame[(frame["panel"] == "first_divergence") & (frame["series"] == "observed")]
    observed = observed.sort_values("x")
    assert observed["x"].tolist() == [1, 2, 3, 4]  # the last bar: never diverged
    np.testing.assert_allclose(observed["y"], DIVERGENCE)
    assert observed["n_pairs"].eq(6).all() and observed["n_prompts"].eq(2).all()
    assert (observed["ci_low"] <= observed["y"] + 1e-12).all()
    assert (observed["y"] <= observed["ci_high"] + 1e-12).all()
    # no collision probe stored: the panel says so instead of predicting
    (note,) = frame.loc[frame["series"] == "no_prediction", "text"]
    assert note == branching.NO_PREDICTION


def test_branching_tree_is_the_prompt_with_most_branch_points(tmp_path):
    from rsp_probe.figures import branching

    frame = branching.data([_branching_run(tmp_path / "r")])
    nodes = frame[frame["panel"] == "tree"]
    # p0 branches twice (after [1] and after [1, 2]); p1 once (after [7, 8])
    assert nodes["label"].str.contains("prompt p0").all()
    assert int(nodes["is_branch"].astype(bool).sum()) == 2
    ends = nodes[nodes["n_trajectories"].notna() & (nodes["x"] == 3)]
    assert sorted(ends["n_trajectories"].astype(int)) == [1, 1, 1]
    # each branch point carries the mean entropy of the trajectories through it:
    # after [1] (step 2) all three samples, after [1, 2] (step 3) samples 0 and 1
    branch = nodes[nodes["is_branch"].astype(bool)].sort_values("x")
    np.testing.assert_allclose(branch["entropy"], [1.0 + 1.0, 1.5 + 0.5])
