"""Generic diversity measures against brute-force references and hand-worked cases."""

import functools
import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rsp_probe.analysis.diversity import (
    STATISTICS,
    distinct_n,
    distinct_strategies,
    diversity_summary,
    pairwise_edit_distances,
    prompt_diversity,
)


def levenshtein(a, b) -> int:
    """The textbook recursion, memoised: an independent reference."""

    @functools.cache
    def d(i, j):
        if i == 0 or j == 0:
            return i + j
        return min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))

    return d(len(a), len(b))


sequences = st.lists(st.lists(st.integers(0, 4), max_size=12), min_size=2, max_size=6)


@settings(max_examples=200, deadline=None)
@given(sequences)
def test_edit_distance_matches_the_recursion_on_every_pair(seqs):
    expected = [levenshtein(tuple(a), tuple(b)) / max(len(a), len(b), 1)
                for a, b in itertools.combinations(seqs, 2)]
    np.testing.assert_allclose(pairwise_edit_distances(seqs), expected)


def test_edit_distance_hand_cases():
    np.testing.assert_allclose(pairwise_edit_distances([[1, 2, 3], [1, 2, 3]]), [0.0])
    np.testing.assert_allclose(pairwise_edit_distances([[1, 2, 3], [4, 5]]), [1.0])
    np.testing.assert_allclose(pairwise_edit_distances([[1, 2, 3, 4], [2, 3, 4]]), [0.25])
    assert pairwise_edit_distances([[1, 2]]).size == 0


@settings(max_examples=200, deadline=None)
@given(sequences, st.integers(1, 4))
def test_distinct_n_matches_counting(seqs, n):
    grams = [tuple(s[i:i + n]) for s in seqs for i in range(len(s) - n + 1)]
    expected = len(set(grams)) / len(grams) if grams else math.nan
    assert distinct_n(seqs, n) == pytest.approx(expected, nan_ok=True)


def test_prompt_diversity_hand_case():
    values = prompt_diversity([[1, 2, 3], [1, 2, 4], [1, 2, 3]], ["7", "8", None],
                              ["steps", "net", "steps"])
    assert values["distinct_answers"] == 2
    assert values["distinct_strategies"] == 2
    assert values["distinct_1"] == pytest.approx(4 / 9)
    assert values["distinct_2"] == pytest.approx(3 / 6)
    assert values["distinct_3"] == pytest.approx(2 / 3)
    assert values["edit_distance"] == pytest.approx((1 / 3 + 0 + 1 / 3) / 3)


def test_summary_averages_prompts_with_cis():
    rows = []
    for prompt, n_distinct in (("p1", 1), ("p2", 3)):
        for sample in range(3):
            rows.append({"prompt_id": prompt, "condition": "temp",
                         "generated_token_ids": [sample % n_distinct, 9, 8, 7, 6],
                         "answer": str(sample % n_distinct), "strategy": "steps"})
    summary = diversity_summary(pd.DataFrame(rows)).set_index("statistic")
    assert set(summary.index) == set(STATISTICS)
    assert summary.loc["distinct_answers", "mean"] == pytest.approx(2.0)
    assert summary.loc["distinct_strategies", "mean"] == 1.0
    assert summary.loc["edit_distance", "ci_low"] <= summary.loc["edit_distance", "mean"]
    assert (summary["n_prompts"] == 2).all()


def test_without_a_strategy_column_that_statistic_is_left_out():
    frame = pd.DataFrame({"prompt_id": ["p"] * 2, "condition": ["c"] * 2,
                          "generated_token_ids": [[1], [2]], "answer": ["1", "2"]})
    assert "distinct_strategies" not in set(diversity_summary(frame)["statistic"])


def test_other_is_not_a_strategy():
    frame = pd.DataFrame({"prompt_id": ["p"] * 3 + ["q"] * 2, "condition": ["c"] * 5,
                          "generated_token_ids": [[1, 2]] * 5, "answer": ["1"] * 5,
                          "strategy": ["steps", "other", "net", "other", "other"]})
    assert distinct_strategies(frame) == {"c": 1.0}  # (2 + 0) / 2
    assert prompt_diversity([[1], [2]], ["1", "1"], ["other", "net"])["distinct_strategies"] == 1


@pytest.fixture()
def labelled_branching_run(tmp_path):
    """The saved branching run, with strategies labelled by sample: 0-1 steps, 2+ net."""
    import json
    import shutil
    from pathlib import Path

    from rsp_probe.runio.integrity import write_manifest
    from rsp_probe.runs import open_run

    source = Path(__file__).parent / "data" / "runs" / "branching"
    shutil.copytree(source, tmp_path / "branching")
    path = tmp_path / "branching" / "trajectories.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records:
        record["strategy"] = "steps" if record["sample"] < 2 else "net"
        if record["condition"] == "temp" and record["sample"] == 0:
            record["strategy"] = "other"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    write_manifest(tmp_path / "branching", 1)  # labelled: a run of its own, so a DONE of its own
    return open_run(tmp_path / "branching"), pd.DataFrame(records)


def test_branching_summary_and_figure_show_strategies(labelled_branching_run):
    import matplotlib

    matplotlib.use("Agg")
    from rsp_probe.analysis.summaries import describe
    from rsp_probe.figures import branching

    run, records = labelled_branching_run
    samples = records.groupby(["condition", "prompt_id"]).size()
    assert samples.min() > 2  # so every prompt has both steps and net ("other" never counts)
    expected = {condition: 2.0 for condition in records["condition"].unique()}
    assert distinct_strategies(run.trajectories) == pytest.approx(expected)
    text = describe(run)
    assert "distinct strategies" in text
    assert "\ndistinct_strategies " in text and "\nedit_distance " in text
    frame = branching.data([run])
    rows = frame[frame["panel"] == "strategies"].set_index("condition")
    for condition, value in expected.items():
        n = samples[condition].iloc[0]
        assert rows.loc[condition, "y"] == pytest.approx(value / n)
    # the figure keeps to four readable panels (issue 25): the strategy counts are plotted
    # data in branching.csv and claims in docs/results.md, and the caption says so
    assert "strateg" in branching.caption(frame)


def test_passk_summary_has_the_diversity_table():
    from pathlib import Path

    from rsp_probe.analysis.summaries import describe
    from rsp_probe.runs import open_run

    run = open_run(Path(__file__).parent / "data" / "runs" / "passk")
    text = describe(run)
    section = text.split("## diversity per prompt")[1]
    for condition in run.trajectories["condition"].unique():
        assert condition in section
    assert "distinct_strategies" not in section  # written before runs recorded a strategy


def test_arithmetic_runs_record_each_trajectory_s_strategy(loaded_qwen2, tmp_path):
    import rsp_probe
    from rsp_probe.tasks.strategies import strategy_of

    run, _ = rsp_probe.branching(model=loaded_qwen2, samples=2, conditions=("temp",),
                                 out=str(tmp_path / "r"), n_prompts=2, max_new_tokens=6,
                                 quiet=True)
    frame = run.trajectories
    assert frame["strategy"].tolist() == [strategy_of(text) for text in frame["text"]]
