"""Figures from saved runs: every figure drawn from the real run directories in
tests/data/runs (written by the real commands on a tiny random model), outputs and
manifest hashes, units and curve counts, byte-identical re-renders, skips, no torch."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rsp_probe.analysis.attention import dilution_fits, head_averaged
from rsp_probe.errors import UsageError
from rsp_probe.runio.integrity import write_manifest
from rsp_probe.runs import find_runs

RUNS = Path(__file__).parent / "data" / "runs"
NAMES = ("entropy", "attention", "influence", "branching", "passk", "knockout", "dose",
         "compare_prompts", "train_rl", "ablations", "branching_tree", "mechanism",
         "knockout_layers")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    from rsp_probe.figures.render import render_all

    out = tmp_path_factory.mktemp("figures")
    return out, render_all([RUNS], out)


@pytest.fixture(scope="module")
def by_command():
    from rsp_probe.figures.render import runs_by_command

    return runs_by_command(find_runs([RUNS]))


def figure_of(name: str, by_command):
    """(data frame, Figure) of one figure module, drawn in the house style."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rsp_probe.figures import FIGURES, style
    from rsp_probe.figures.render import inputs_for

    module = next(m for m in FIGURES if m.NAME == name)
    frame = style.round_sig(module.data(inputs_for(module, by_command)))
    with plt.rc_context(style.rc()):
        fig = module.make(frame)
    return frame, fig


def gids(ax, prefix: str) -> list[str]:
    return [line.get_gid() for line in ax.get_lines()
            if (line.get_gid() or "").startswith(prefix)]


def test_every_figure_written_with_a_matching_manifest(rendered):
    out, result = rendered
    assert list(result["rendered"]) == list(NAMES)
    assert result["skipped"] == {}
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert set(manifest["figures"]) == set(NAMES)
    assert set(manifest["versions"]) >= {"rsp-probe", "matplotlib", "numpy", "pandas"}
    hashes = {r.id: r.config_hash for r in find_runs([RUNS])}
    for name in NAMES:
        entry = manifest["figures"][name]
        assert set(entry["outputs"]) == {f"{name}.png", f"{name}.pdf", f"{name}.csv",
                                         f"{name}.caption.md"}
        for file, digest in entry["outputs"].items():
            assert (out / file).stat().st_size > 0
            assert sha256(out / file) == digest
        for source in entry["inputs"]:
            assert hashes[source["run"]] == source["config_hash"]
    assert [i["run"] for i in manifest["figures"]["ablations"]["inputs"]] == ["entropy", "passk"]
    text = (out / "MANIFEST.json").read_text()
    assert text == json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def test_rendering_twice_gives_identical_bytes(rendered, tmp_path):
    """Determinism of the files, not of the analysis (tests/test_references_analysis.py
    checks the plotted numbers): catches timestamps or random ids in PNG/PDF metadata and
    unordered CSV rows."""
    from rsp_probe.figures.render import render_all

    out, _ = rendered
    render_all([RUNS], tmp_path)
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 4 * len(NAMES) + 1
    for name in files:
        assert sha256(out / name) == sha256(tmp_path / name), name


def test_entropy_one_curve_per_condition_in_nats(by_command):
    frame, fig = figure_of("entropy", by_command)
    (ax,) = fig.axes
    conditions = find_runs([RUNS / "entropy"])[0].trajectories["condition"].unique()
    assert len(gids(ax, "observed:")) == len(conditions) == 3
    assert len(ax.collections) == len(conditions)  # one CI band each
    assert "nats" in ax.get_ylabel() and ax.get_xscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["k=0", "k=4", "k=16"]  # sample sizes go in the caption
    assert frame["n_prompts"].eq(4).all()


def test_attention_layers_fit_on_a_shared_fraction_axis_without_envelope(by_command):
    frame, fig = figure_of("attention", by_command)
    n_layers = find_runs([RUNS / "attention"])[0].config["model_info"]["n_layers"]
    panels = [ax for ax in fig.axes if ax.get_title().startswith("RSP attention mass")]
    assert len(panels) == 2  # k=4, k=16
    for ax in panels:
        assert len(gids(ax, "observed:layer")) == n_layers + 1  # each layer + the mean
        assert len(gids(ax, "theory:dilution_fit")) == n_layers + 1
        assert not gids(ax, "theory:envelope")  # B is not measured: no envelope
        assert "fraction" in ax.get_ylabel()
        assert all(line.get_linestyle() == "--" for line in ax.get_lines()
                   if (line.get_gid() or "").startswith("theory:"))
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert not any("envelope" in t for t in legend) and len(legend) <= 6
        assert ax.get_ylim() == panels[0].get_ylim()  # k compared on one axis
        assert 0 <= ax.get_ylim()[0] < ax.get_ylim()[1] <= 1
    # the dashed mean is the prompt mean of each trajectory's law with its own n (#26)
    run = find_runs([RUNS / "attention"])[0]
    fit = dilution_fits(run, n_boot=0)["k16"]["layers"]["-1"]
    rows = frame[(frame["condition"] == "k16") & (frame["series"] == "dilution_fit")
                 & (frame["layer"] == -1)]
    assert rows["delta"].iloc[0] == pytest.approx(fit["delta"], rel=1e-5)  # csv rounding
    lengths = run.trajectories.set_index("id")["prompt_token_ids"].map(len)
    masses = head_averaged(run)
    masses = masses[(masses["layer"] == -1) & (masses["condition"] == "k16")]
    from rsp_probe.theory import dilution_mass

    law = pd.Series(dilution_mass(masses["step"], masses["trajectory"].map(lengths), 16,
                                  fit["delta"]), index=masses.index)
    expected = law.groupby([masses["step"], masses["prompt_id"]]).mean().groupby(level=0).mean()
    np.testing.assert_allclose(rows["y"], expected.loc[rows["x"]].to_numpy(), rtol=1e-5)


def test_influence_panels_and_slope(by_command):
    frame, fig = figure_of("influence", by_command)
    kl, tv, shift, scatter = fig.axes
    for ax in (kl, tv, shift):
        assert len(gids(ax, "observed:")) == 2  # k4, k16
    assert "nats" in kl.get_ylabel() and "nats" in shift.get_ylabel()
    assert scatter.get_xscale() == scatter.get_yscale() == "log"
    assert "fraction" in scatter.get_xlabel() and "nats" in scatter.get_ylabel()
    assert len(gids(scatter, "theory:slope2")) == 1 and len(gids(scatter, "fit:")) == 1
    legend = [t.get_text() for t in scatter.get_legend().get_texts()]
    assert any("theory: slope 2" in t for t in legend)
    assert any(t.startswith("fit: slope") and "[" in t for t in legend)
    fit = frame[frame["series"] == "fit"]
    assert (fit["slope_ci_low"] <= fit["slope"]).all()
    assert (fit["slope"] <= fit["slope_ci_high"]).all()


def test_branching_fraction_divergence_and_tree(by_command):
    frame, fig = figure_of("branching", by_command)
    fraction, *divergence = [ax for ax in fig.axes if ax.get_visible()]
    assert len(gids(fraction, "observed:")) == 3
    assert len(divergence) == 3
    titles = {ax.get_title().split(": ")[1]: ax for ax in divergence}
    for name in ("greedy+rsp", "temp", "temp+rsp"):  # greedy: fitted c; temp: collision hazard
        assert gids(titles[name], "theory:")
    legend = [t.get_text() for t in fraction.get_legend().get_texts()]
    assert legend == ["greedy+rsp, k=4", "temp, k=0", "temp+rsp, k=4"]  # the k named
    predicted = frame[frame["series"] == "predicted"]
    assert predicted.groupby("condition")["y"].sum().to_numpy() == pytest.approx(1.0)
    nodes, tree_fig = figure_of("branching_tree", by_command)
    tree, bar = tree_fig.axes  # the entropy at a branch point is its colour: a colour bar
    assert "entropy" in bar.get_ylabel() and "nats" in bar.get_ylabel()
    assert len(gids(tree, "tree:edge")) == len(nodes) - 1
    assert nodes["is_branch"].astype(bool).sum() == 3


def test_collapsed_prefix_tree():
    from rsp_probe.analysis.prefix_tree import PrefixTree
    from rsp_probe.figures.prefix_tree import tree_rows

    tree = PrefixTree([[1, 2, 3, 9], [1, 2, 4], [5], [5]])
    rows = tree_rows(tree, np.zeros(tree.n_nodes))
    edges = sorted(rows.loc[rows["text"] != "", "text"])
    assert edges == ["1 +1", "3 +1", "4", "5"]
    assert rows["is_branch"].sum() == 2  # the root and the prefix [1, 2]
    leaf = rows[rows["text"] == "5"].iloc[0]
    assert leaf["n_trajectories"] == 2 and leaf["x"] == 1


def test_passk_curves_on_log2_axis(by_command):
    from rsp_probe.analysis.conditions import condition_k
    from rsp_probe.analysis.passk import default_pairs, paired_table

    frame, fig = figure_of("passk", by_command)
    sampled, greedy, gain = fig.axes
    levels = frame[frame["series"] == "level"]
    drawn = gids(sampled, "observed:") + gids(greedy, "observed:")
    assert len(drawn) == levels["condition"].nunique() == 4
    assert sampled.get_ylim() == greedy.get_ylim()  # one Pass@N axis
    for ax in (sampled, greedy, gain):
        assert ax.get_xscale() == "log"
        assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "4"]
        assert all(", k=" in t.get_text() for t in ax.get_legend().get_texts())
    assert "fraction" in sampled.get_ylabel()
    # the paired gains are the analysis' own paired differences, one line per pair
    run = by_command["passk"][0]
    pairs = default_pairs(condition_k(run).index)
    expected = paired_table(run, [1, 2, 4], pairs)
    gains = frame[frame["series"] == "gain"]
    assert len(gids(gain, "observed:gain:")) == len(pairs) == 2
    np.testing.assert_allclose(gains["y"], expected["difference"], rtol=1e-7, atol=1e-12)


def test_ablations_grouped_by_the_factors_that_differ(by_command):
    frame, fig = figure_of("ablations", by_command)
    assert list(dict.fromkeys(frame["factor"])) == ["k", "temperature"]
    assert set(frame["metric"]) == {"early_entropy", "early_mass", "pass_at_n"}
    entropy, mass, passk = fig.axes  # one panel per metric, the variants shared
    assert "nats" in entropy.get_xlabel() and "fraction" in mass.get_xlabel()
    assert entropy.get_ylim() == mass.get_ylim() == passk.get_ylim()
    for metric, ax in zip(["early_entropy", "early_mass", "pass_at_n"], fig.axes):
        assert all(t.get_text().startswith("k=") for t in ax.get_legend().get_texts())
        ks = frame[(frame["metric"] == metric) & (frame["factor"] == "k")]["level"]
        assert len(gids(ax, "observed:")) == ks.nunique()
    entropy_k16 = frame[(frame["metric"] == "early_entropy") & (frame["condition"] == "k16")]
    assert (entropy_k16["ci_low"] <= entropy_k16["y"]).all()


def test_several_runs_grouped_by_the_config_fields_that_differ(tmp_path):
    from rsp_probe.figures import ablations, entropy

    for name, sigma in (("sigma1", 1.0), ("sigma2", 2.0)):
        shutil.copytree(RUNS / "entropy", tmp_path / name)
        config = json.loads((tmp_path / name / "config.json").read_text())
        (tmp_path / name / "config.json").write_text(json.dumps({**config, "sigma_scale": sigma}))
        write_manifest(tmp_path / name, 1)  # a run of its own now: DONE says so
    runs = find_runs([tmp_path])
    frame = ablations.data(runs)
    assert list(dict.fromkeys(frame["factor"])) == ["k", "sigma_scale"]
    sigma = frame[frame["factor"] == "sigma_scale"]
    assert sorted(set(sigma["level"])) == ["1", "2"]
    assert set(sigma["hue"]) == {"k=4", "k=16"}
    assert set(frame.loc[frame["factor"] == "k", "hue"]) == {"sigma_scale=1", "sigma_scale=2"}
    # The main entropy figure keeps to the paper's law; the sigma 2 run is an ablation.
    labels = set(entropy.data(runs)["label"])
    assert labels == {"k=0", "k=4", "k=16"}


def test_missing_runs_are_skipped_with_the_command_name(tmp_path):
    from rsp_probe.figures.render import render_all

    result = render_all([RUNS / "passk"], tmp_path)
    assert list(result["rendered"]) == ["passk"]
    for name in ("entropy", "attention", "influence", "branching"):
        assert result["skipped"][name] == f"skipping {name}: needs an `rsp-probe {name}` run"
    assert result["skipped"]["ablations"] == \
        "skipping ablations: needs an `rsp-probe entropy` run"
    manifest = json.loads((tmp_path / "MANIFEST.json").read_text())
    assert set(manifest["figures"]) == {"passk"} and "attention" in manifest["skipped"]


def test_nothing_drawable_is_a_usage_error(tmp_path):
    from rsp_probe.figures.render import render_all

    with pytest.raises(UsageError, match="no completed runs"):
        render_all([tmp_path], tmp_path / "out")
    run = tmp_path / "other"
    shutil.copytree(RUNS / "passk", run)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "command": "other"}))
    write_manifest(run, 1)  # a run of its own now: DONE says so
    with pytest.raises(UsageError, match="needs an `rsp-probe entropy` run"):
        render_all([run], tmp_path / "out")


def test_round_sig_keeps_eight_significant_digits():
    from rsp_probe.figures.style import round_sig

    frame = pd.DataFrame({"v": [1.23456789123, -9.87654321e-12, 0.0, np.nan], "n": [1, 2, 3, 4]})
    out = round_sig(frame)
    assert out["v"].iloc[0] == 1.2345679 and out["v"].iloc[1] == -9.8765432e-12
    assert out["v"].iloc[2] == 0.0 and np.isnan(out["v"].iloc[3])
    assert out["n"].tolist() == [1, 2, 3, 4]


def test_figures_never_import_torch():
    code = ("import sys, rsp_probe.figures as f\n"
            "assert 'matplotlib' not in sys.modules\n"
            "import rsp_probe.figures.render\n"
            "f.FIGURES\n"
            "bad = {'torch', 'transformer_lens'} & set(sys.modules)\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_drawing_a_figure_does_not_import_seaborn(tmp_path):
    """Every command draws its run's figure: importing seaborn (and scipy.stats with it)
    for the house style cost each one half a second."""
    code = ("import sys\n"
            "from rsp_probe.figures.render import render_all\n"
            f"render_all([{str(RUNS / 'entropy')!r}], {str(tmp_path)!r})\n"
            "assert 'seaborn' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert (tmp_path / "entropy.png").stat().st_size > 0


def test_the_frozen_style_is_seaborns():
    """rc() and palette() without importing seaborn, equal to what seaborn 0.13 gives."""
    import seaborn as sns  # a dev dependency: make install brings it

    from rsp_probe.figures import style

    expected = {**dict(sns.axes_style("whitegrid")), **dict(sns.plotting_context("paper"))}
    assert expected.pop("image.cmap") == "rocket"  # seaborn's own colormap, left out
    assert {**style.WHITEGRID, **style.PAPER} == expected
    for n in range(0, 31):
        name = "colorblind" if n <= 10 else "viridis"
        assert style.palette(n) == list(sns.color_palette(name, max(n, 1))), n


def test_compare_prompts_figure_plots_the_run_tables(by_command):
    from rsp_probe.analysis.compare_prompts import COMPARE_FILE, CURVES_FILE

    frame, fig = figure_of("compare_prompts", by_command)
    run = by_command["compare-prompts"][0]
    table = run.table(COMPARE_FILE)
    greedy = frame[(frame["panel"] == "accuracy") & (frame["series"] == "greedy")]
    assert list(greedy["x"]) == list(table["arm"])
    np.testing.assert_allclose(greedy["y"], table["greedy_accuracy"], rtol=1e-3)
    curves = run.table(CURVES_FILE)
    arms_with_mass = curves.loc[curves["probe"] == "rsp_attention", "arm"].unique()
    drawn = gids(fig.axes[1], "observed:rsp_attention:")
    assert sorted(drawn) == sorted(f"observed:rsp_attention:{arm}" for arm in arms_with_mass)
