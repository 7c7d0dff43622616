"""Prefix-tree branching analysis against brute-force scans of the token lists."""

import math
from collections import Counter
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rsp_probe.analysis.prefix_tree import (
    BRANCHING_COLUMNS,
    SUMMARY_COLUMNS,
    PrefixTree,
    branch_points,
    branching_records,
    distinct_prefix_fraction,
    first_divergence_counts,
    first_divergence_steps,
    summarise_branching,
)

END = "end"

# Small alphabets and short lengths so that prefixes collide and sequences end mid-tree.
token_lists = st.lists(st.lists(st.integers(0, 2), max_size=8), min_size=1, max_size=8)
fast = settings(max_examples=150, deadline=None)


def brute_prefix_count(seqs, t):
    # seq[:t] of a shorter sequence is the whole sequence: the finished-sequence rule.
    return len({tuple(s[:t]) for s in seqs})


def brute_divergence(a, b):
    for k in range(max(len(a), len(b))):
        if k >= len(a) or k >= len(b) or a[k] != b[k]:
            return k + 1
    return None


def brute_branch_points(seqs, values=None):
    """(step, n_children, n_through, mean value at step) per prefix with > 1 next outcome."""
    prefixes = {tuple(s[:d]) for s in seqs for d in range(len(s) + 1)}
    out = []
    for p in prefixes:
        d = len(p)
        through = [i for i, s in enumerate(seqs) if tuple(s[:d]) == p and len(s) >= d]
        nxt = {seqs[i][d] if len(seqs[i]) > d else END for i in through}
        if len(nxt) > 1:
            vals = [] if values is None else [values[i][d] for i in through
                                              if len(seqs[i]) > d and not math.isnan(values[i][d])]
            out.append((d + 1, len(nxt), len(through), np.mean(vals) if vals else np.nan))
    return sorted(out)


def random_values(seqs, seed, pad=0):
    """Per-step values with some nans, padded past each trajectory's end like a buffer."""
    rng = np.random.default_rng(seed)
    values = [rng.random(len(s) + pad) for s in seqs]
    for v in values:
        v[rng.random(v.size) < 0.1] = np.nan
    return values


@fast
@given(token_lists, st.integers(0, 12))
def test_prefix_counts_match_brute_force(seqs, max_step):
    counts = PrefixTree(seqs).prefix_counts(max_step)
    assert counts.tolist() == [brute_prefix_count(seqs, t) for t in range(1, max_step + 1)]
    frac = distinct_prefix_fraction(seqs, max_step)
    np.testing.assert_allclose(frac, counts / len(seqs))


@fast
@given(token_lists)
def test_fraction_non_decreasing_and_ends_at_distinct_sequences(seqs):
    frac = distinct_prefix_fraction(seqs, 12)
    assert np.all(np.diff(frac) >= 0)
    assert frac[-1] == pytest.approx(len({tuple(s) for s in seqs}) / len(seqs))


@fast
@given(token_lists)
def test_first_divergence_matches_pairwise_scan(seqs):
    expected = [brute_divergence(a, b) for a, b in combinations(seqs, 2)]
    assert first_divergence_steps(seqs) == expected
    assert first_divergence_counts(seqs) == dict(Counter(-1 if s is None else s
                                                         for s in expected))


@fast
@given(token_lists, st.integers(0, 2**32 - 1))
def test_branch_points_match_brute_force(seqs, seed):
    entropy, attention = random_values(seqs, seed, pad=2), random_values(seqs, seed + 1)
    points = branch_points(seqs, entropy=entropy, attention=attention)
    got = sorted((b.step, b.n_children, b.n_trajectories) for b in points)
    assert got == [row[:3] for row in brute_branch_points(seqs)]
    assert [b.step for b in points] == sorted(b.step for b in points)
    assert all(b.prefix_len == b.step - 1 for b in points)
    # Branch points can tie on (step, n_children, n_trajectories) and values can be nan, so
    # compare sorted with nan mapped to -inf (nan breaks tuple ordering).
    def order(row):
        return (*row[:3], -np.inf if np.isnan(row[3]) else row[3])

    for values, field in ((entropy, "entropy"), (attention, "rsp_attention")):
        got = sorted(((b.step, b.n_children, b.n_trajectories, getattr(b, field))
                      for b in points), key=order)
        want_rows = sorted(brute_branch_points(seqs, values), key=order)
        for g, want in zip(got, want_rows, strict=True):
            assert g[:3] == want[:3]
            np.testing.assert_allclose(g[3], want[3])


def test_single_trajectory():
    seqs = [[3, 1, 4, 1, 5]]
    np.testing.assert_array_equal(distinct_prefix_fraction(seqs, 7), np.ones(7))
    assert first_divergence_steps(seqs) == []
    assert first_divergence_counts(seqs) == {}
    assert branch_points(seqs) == []


@pytest.mark.parametrize("n", [2, 3, 8])
def test_identical_trajectories(n):
    seqs = [[7, 8, 9, 0]] * n
    np.testing.assert_allclose(distinct_prefix_fraction(seqs, 6), np.full(6, 1 / n))
    assert first_divergence_steps(seqs) == [None] * (n * (n - 1) // 2)
    assert branch_points(seqs) == []


# (sequences, first divergence per pair, (step, n_children, n_through) per branch point)
CASES = [
    ([[1, 2], [1, 2, 3]], [3], [(3, 2, 2)]),  # ending is a child when another continues
    ([[1, 2], [1, 2]], [None], []),  # all ending at a node is a leaf, not a branch
    ([[], [5]], [1], [(1, 2, 2)]),  # an empty trajectory diverges at step 1
    ([[1, 2], [1, 3], [4]], [2, 1, 1], [(1, 2, 3), (2, 2, 2)]),
    ([[0, 1], [0, 2], [0, 3], [0]], [2, 2, 2, 2, 2, 2], [(2, 4, 4)]),
]


@pytest.mark.parametrize(("seqs", "divergence", "points"), CASES)
def test_hand_cases(seqs, divergence, points):
    assert first_divergence_steps(seqs) == divergence
    assert [(b.step, b.n_children, b.n_trajectories) for b in branch_points(seqs)] == points


def test_branch_point_without_values_is_nan():
    (point,) = branch_points([[1, 2], [1, 3]])
    assert point.step == 2 and point.prefix_len == 1
    assert math.isnan(point.entropy) and math.isnan(point.rsp_attention)


def test_mismatched_inputs_raise():
    with pytest.raises(ValueError):
        branch_points([[1, 2], [1, 3]], entropy=[[0.1, 0.2]])
    with pytest.raises(ValueError):
        branch_points([[1, 2], [1, 3]], entropy=[[0.1, 0.2], [0.3]])
    with pytest.raises(ValueError):
        distinct_prefix_fraction([], 3)


def test_records_columns_dtypes_and_rows():
    seqs = [[1, 2], [1, 2, 3], [1, 4]]
    entropy = [[0.1, 0.2], [0.3, 0.4, 0.5], [0.6, 0.7]]
    frame = branching_records(17, "rsp", seqs, answers=["14", None, "14"],
                              correct=[True, False, True], entropy=entropy)
    assert tuple(frame.columns) == BRANCHING_COLUMNS
    for col in ("prompt_id", "condition", "record"):
        assert pd.api.types.is_string_dtype(frame[col])
        assert all(isinstance(v, str) for v in frame[col])
    assert frame[["step", "count"]].dtypes.tolist() == [np.dtype("int64")] * 2
    assert frame[["value", "entropy", "rsp_attention"]].dtypes.tolist() == [np.dtype("float64")] * 3
    assert set(frame["prompt_id"]) == {"17"}

    rows = {r: g for r, g in frame.groupby("record")}
    frac = rows["distinct_prefix_fraction"]
    assert frac["step"].tolist() == [1, 2, 3]
    assert frac["count"].tolist() == [1, 2, 3]
    np.testing.assert_allclose(frac["value"], [1 / 3, 2 / 3, 1])
    div = rows["first_divergence"]
    assert dict(zip(div["step"], div["count"])) == {2: 2, 3: 1}
    np.testing.assert_allclose(div["value"], [2 / 3, 1 / 3])
    bp = rows["branch_point"]
    assert bp["step"].tolist() == [2, 3] and bp["count"].tolist() == [3, 2]
    np.testing.assert_allclose(bp["value"], [2, 2])
    np.testing.assert_allclose(bp["entropy"], [(0.2 + 0.4 + 0.7) / 3, 0.5])
    assert bp["rsp_attention"].isna().all()
    (answers,) = rows["answers"].itertuples()
    assert (answers.step, answers.value, answers.count) == (-1, 1.0, 2)


def test_records_single_trajectory_and_never_rows():
    one = branching_records("a", "c", [[1, 2]], answers=[None], correct=[False])
    assert set(one["record"]) == {"distinct_prefix_fraction", "answers"}
    np.testing.assert_allclose(one.loc[one["record"] == "distinct_prefix_fraction", "value"], 1)
    assert one.loc[one["record"] == "answers", "value"].item() == 0
    same = branching_records("a", "c", [[1], [1], [2]], ["x", "y", "x"], [1, 0, 1], max_step=4)
    div = same[same["record"] == "first_divergence"]
    assert dict(zip(div["step"], div["count"])) == {1: 2, -1: 1}
    assert (same["record"] == "distinct_prefix_fraction").sum() == 4


def test_summarise_hand_computed():
    frame = pd.concat([
        # prompt A: fractions 1/2, 1, 1; one pair diverging at step 2
        branching_records("A", "rsp", [[1, 2, 9], [1, 3, 9]], ["1", "2"], [True, False]),
        # prompt B (longest 2): fractions 2/3, 2/3 (carried to 2/3 at step 3); pairs None, 1, 1
        branching_records("B", "rsp", [[5], [5], [6, 7]], ["1", "1", "1"], [True] * 3),
        # condition "none": identical pair, longest 2 -> steps 1, 2 only
        branching_records("C", "none", [[4, 4], [4, 4]], [None, None], [False] * 2),
    ], ignore_index=True)
    summary = summarise_branching(frame)
    assert tuple(summary.columns) == SUMMARY_COLUMNS
    got = {(r.condition, r.statistic, r.step): r for r in summary.itertuples()}
    assert len(got) == len(summary)
    # Two prompts: resampled means take min, midpoint, max with odds 1/4, 1/2, 1/4, so the
    # 2.5% / 97.5% percentiles of 2000 resamples are the two prompt values.
    expected = {
        ("rsp", "distinct_prefix_fraction", 1): (7 / 12, 1 / 2, 2 / 3, 2),
        ("rsp", "distinct_prefix_fraction", 2): (5 / 6, 2 / 3, 1, 2),
        ("rsp", "distinct_prefix_fraction", 3): (5 / 6, 2 / 3, 1, 2),
        ("rsp", "median_first_divergence", -1): (1, np.nan, np.nan, 2),
        ("rsp", "never_diverged_share", -1): (1 / 4, np.nan, np.nan, 2),
        ("none", "distinct_prefix_fraction", 1): (1 / 2, 1 / 2, 1 / 2, 1),
        ("none", "distinct_prefix_fraction", 2): (1 / 2, 1 / 2, 1 / 2, 1),
        ("none", "median_first_divergence", -1): (np.nan, np.nan, np.nan, 1),
        ("none", "never_diverged_share", -1): (1, np.nan, np.nan, 1),
    }
    assert set(got) == set(expected)
    for key, (value, lo, hi, n_prompts) in expected.items():
        row = got[key]
        np.testing.assert_allclose([row.value, row.ci_low, row.ci_high], [value, lo, hi])
        assert row.n_prompts == n_prompts
        assert row.n_pairs == (4 if key[0] == "rsp" else 1)
