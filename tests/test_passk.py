"""pass@k against exact enumeration and big-integer binomials; bootstrap sanity."""

import itertools
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import comb

from rsp_probe.analysis.pass_at_k import (
    bootstrap_pass_at_k,
    paired_difference,
    pass_at_k,
    pass_at_k_table,
)


def _enumerated(n: int, c: int, k: int) -> Fraction:
    """Share of k-subsets of n samples (the first c correct) holding a correct one."""
    subsets = list(itertools.combinations(range(n), k))
    return Fraction(sum(any(i < c for i in s) for s in subsets), len(subsets))


def _big_int(n: int, c: int, k: int) -> Fraction:
    return 1 - Fraction(comb(n - c, k, exact=True), comb(n, k, exact=True))


SMALL = [(n, c, k) for n in range(1, 11) for c in range(n + 1) for k in range(1, n + 1)]
LARGE = [
    (n, c, k)
    for n in (50, 200, 1000)
    for c in (0, 1, 3, n // 10, n // 2, n - 5, n)
    for k in (1, 2, 10, n // 4, n - 1)
]


@pytest.mark.parametrize(("n", "c", "k"), SMALL)
def test_matches_enumeration(n, c, k):
    assert pass_at_k(n, c, k) == pytest.approx(float(_enumerated(n, c, k)), abs=1e-12)


@pytest.mark.parametrize(("n", "c", "k"), LARGE)
def test_matches_big_integer_binomials(n, c, k):
    assert pass_at_k(n, c, k) == pytest.approx(float(_big_int(n, c, k)), abs=1e-12)


@pytest.mark.parametrize(("n", "c", "k"), [(5, 5, 1), (5, 3, 3), (10, 8, 5), (4, 1, 4)])
def test_is_one_when_every_subset_has_a_correct_sample(n, c, k):
    assert pass_at_k(n, c, k) == 1.0


@pytest.mark.parametrize(
    ("n", "c", "k"),
    [(5, 1, 6), (5, 6, 1), (-1, 0, 1), (5, -1, 1), (5, 1, -1), (5, 1, 0), (0, 0, 0)],
)
def test_rejects_bad_arguments(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


@given(st.integers(1, 60).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))))
def test_monotone_in_k(nc):
    n, c = nc
    values = [pass_at_k(n, c, k) for k in range(1, n + 1)]
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(values))
    assert all(0.0 <= v <= 1.0 for v in values)


@given(st.integers(1, 60).flatmap(lambda n: st.tuples(st.just(n), st.integers(1, n))))
def test_monotone_in_c(nk):
    n, k = nk
    values = [pass_at_k(n, c, k) for c in range(n + 1)]
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(values))


def test_table_shapes_and_values():
    counts = [0, 3, 10]
    assert pass_at_k_table(counts, 10, 1).tolist() == pytest.approx([0.0, 0.3, 1.0])
    table = pass_at_k_table(counts, 10, [1, 5])
    assert table.shape == (3, 2)
    assert table[1, 1] == pytest.approx(pass_at_k(10, 3, 5))


def test_bootstrap_interval_contains_mean_and_is_reproducible():
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 17, size=40)
    mean, lo, hi = bootstrap_pass_at_k(counts, 16, 4, n_boot=500, seed=3)
    assert mean == pytest.approx(pass_at_k_table(counts, 16, 4).mean())
    assert lo <= mean <= hi
    assert (mean, lo, hi) == bootstrap_pass_at_k(counts, 16, 4, n_boot=500, seed=3)


def test_paired_difference():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 9, size=30)
    b = np.clip(a - 2, 0, 8)
    diff, lo, hi = paired_difference(a, b, 8, 8, 2, n_boot=500)
    assert diff > 0 and lo <= diff <= hi
    assert paired_difference(a, a, 8, 8, 2, n_boot=200) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        paired_difference(a, a[:-1], 8, 8, 2)
