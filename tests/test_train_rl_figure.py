"""The train-rl statistics (hierarchical bootstrap over seeds, then problems), the figure
drawn from a real train-rl run (tests/data/runs/train-rl), and the claims on runs of both
arms built from it."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rsp_probe.analysis.stats import bootstrap_mean
from rsp_probe.analysis.train_rl import (
    arm_difference,
    change_along_training,
    curve,
    hierarchical_mean,
)
from rsp_probe.runs import open_run

RUN = Path(__file__).parent / "data" / "runs" / "train-rl"


def test_one_seed_is_the_prompt_bootstrap():
    values = np.array([[0.1, 0.5, 0.9, 0.3, 0.7]])
    mean, low, high = hierarchical_mean(values, seed=3)
    assert mean == pytest.approx(0.5)
    reference = bootstrap_mean(values[0], seed=3)
    # the seed level draws first from the same generator, so the prompt draws differ: same
    # estimator, other resamples; both intervals cover the mean and lie in the data's range
    assert low < mean < high and reference[1] < mean < reference[2]
    assert 0.1 <= low and high <= 0.9


def test_run_to_run_variation_widens_the_interval():
    prompts = np.linspace(0.4, 0.6, 30)
    same = np.stack([prompts, prompts])
    apart = np.stack([prompts - 0.3, prompts + 0.3])
    narrow = hierarchical_mean(same)
    wide = hierarchical_mean(apart)
    assert narrow[0] == pytest.approx(wide[0])
    assert (wide[2] - wide[1]) > 5 * (narrow[2] - narrow[1])


def synthetic(shift_rsp: float) -> pd.DataFrame:
    """Two arms x two seeds x 20 prompts at updates 0 and 10; the RSP arm's pass@1 is the
    no-RSP arm's plus `shift_rsp` at update 10, per prompt."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.6, size=(2, 20))
    rows = []
    for arm, shift in (("none", 0.0), ("rsp", shift_rsp)):
        for seed in (0, 1):
            for prompt in range(20):
                for step, value in ((0, base[seed, prompt]), (10, base[seed, prompt] + shift)):
                    rows.append({"arm": arm, "seed": seed, "step": step, "condition": "temp",
                                 "prompt_id": f"p{prompt}", "metric": "pass@1",
                                 "value": value})
    return pd.DataFrame(rows)


def test_arm_difference_is_paired_by_seed_and_problem():
    value, low, high, seeds, prompts = arm_difference(synthetic(0.05), "temp", "pass@1")
    # a constant per-problem shift: the paired interval has no width at all
    assert (value, low, high) == pytest.approx((0.05, 0.05, 0.05))
    assert (seeds, prompts) == (2, 20)
    change = change_along_training(synthetic(0.05), "rsp", "temp", "pass@1")
    assert change[:3] == pytest.approx((0.05, 0.05, 0.05))
    relative = change_along_training(synthetic(0.0), "none", "temp", "pass@1", relative=True)
    assert relative[:3] == pytest.approx((0.0, 0.0, 0.0), abs=1e-12)


def test_curve_has_one_point_per_probed_update():
    found = curve(synthetic(0.1), "rsp", "temp", "pass@1")
    assert found["step"].tolist() == [0, 10]
    assert (found["ci_low"] <= found["y"]).all() and (found["y"] <= found["ci_high"]).all()
    assert found["n_seeds"].tolist() == [2, 2] and found["n_prompts"].tolist() == [20, 20]


def test_figure_panels_legend_fractions_and_nothing_clipped():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rsp_probe.figures import style, train_rl

    frame = style.round_sig(train_rl.data([open_run(RUN)]))
    passes = frame[frame["panel"].str.startswith("pass@")]
    assert ((passes[["y", "ci_low", "ci_high"]] >= 0) & (passes[["y", "ci_low", "ci_high"]]
                                                          <= 1)).all().all()
    assert set(frame["panel"]) == {"pass@1", "pass@2", "entropy_all", "influence_kl"}
    assert set(frame.loc[frame["panel"] == "influence_kl", "condition"]) == {"rsp+temp"}
    with plt.rc_context(style.rc()):
        fig = train_rl.make(frame)
        fig.tight_layout()  # as render_one lays it out
        fig.canvas.draw()
        visible = [ax for ax in fig.axes if ax.get_visible()]
        assert len(visible) <= 4
        legends = [ax.get_legend() for ax in visible if ax.get_legend() is not None]
        assert len(legends) == 1 and len(legends[0].get_texts()) <= 6
        renderer = fig.canvas.get_renderer()
        box = fig.bbox
        for artist in [*legends, fig._suptitle, *[ax.title for ax in visible],
                       *[ax.xaxis.label for ax in visible], *[ax.yaxis.label for ax in visible]]:
            extent = artist.get_window_extent(renderer)
            assert extent.x0 >= box.x0 - 1 and extent.x1 <= box.x1 + 1, artist
            assert extent.y0 >= box.y0 - 1 and extent.y1 <= box.y1 + 1, artist
        legend_box = legends[0].get_window_extent(renderer)
        for ax in visible:  # the legend hides no panel
            assert not legend_box.overlaps(ax.get_window_extent(renderer))
        plt.close(fig)


def test_claims_on_runs_of_both_arms(tmp_path):
    """The plan's four runs, stood in for by copies of the test run relabelled by arm and
    seed: every claim family member is computed, and identical arms differ by exactly 0."""
    import json

    from rsp_probe.claims import compute_claims
    from rsp_probe.rl.plan import ARMS, SEEDS, run_name
    from rsp_probe.runio.integrity import write_manifest
    from rsp_probe.runs import SCHEMA_VERSION

    runs = {}
    for arm in ARMS:
        for seed in SEEDS:
            target = tmp_path / run_name(arm, seed)
            shutil.copytree(RUN, target)
            config = json.loads((target / "config.json").read_text())
            (target / "config.json").write_text(json.dumps({**config, "arm": arm,
                                                            "seed": seed}))
            write_manifest(target, SCHEMA_VERSION)
            runs[target.name] = open_run(target)
    table = compute_claims(runs, only=["train-rl"])
    claims = table.by_id()
    # the test run probes Pass@1 and Pass@2 (the plan: Pass@1 and Pass@8)
    for claim_id in ("train-rl.final.pass@1.temp", "train-rl.final.pass@2.rsp+temp",
                     "train-rl.final.entropy.temp"):
        assert claims[claim_id].value == 0.0
        assert claims[claim_id].fields["seeds"] == 2 if "pass" in claim_id else True
    assert claims["train-rl.ratio-first-step"].value == 0.0
    assert {c.id for c in table.claims} >= {"train-rl.entropy-change.none",
                                            "train-rl.influence_kl-change.rsp",
                                            "train-rl.rsp_attention-change.rsp"}
