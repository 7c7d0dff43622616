"""pass@k: the unbiased estimator, per-problem tables, and bootstrap intervals over problems.

With n samples per problem of which c are correct, the chance that at least one of k samples
drawn without replacement is correct is 1 - C(n-c, k) / C(n, k) (Chen et al., 2021). It is
computed here as 1 - prod_{i=n-c+1}^{n} (1 - k/i), which never forms the large binomials.

Intervals resample problems (not samples) with replacement: the problem set is the population
the estimate generalises over. `paired_difference` resamples the same problems for both
conditions, so problem difficulty cancels out of the difference.
"""

from collections.abc import Sequence

import numpy as np

from rsp_probe.analysis.stats import N_BOOT, bootstrap_indices, percentile_interval


def _check_args(n: int, c: int, k: int) -> None:
    if n < 0 or c < 0 or k < 0:
        raise ValueError(f"pass@k needs non-negative n, c, k; got n={n}, c={c}, k={k}")
    if k < 1:
        raise ValueError(f"pass@k needs k >= 1; got k={k}")
    if k > n:
        raise ValueError(f"pass@k needs k <= n; got k={k} > n={n}")
    if c > n:
        raise ValueError(f"pass@k needs c <= n; got c={c} > n={n}")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem: n samples drawn, c of them correct.

    Requires 1 <= k <= n and 0 <= c <= n (ValueError otherwise). Returns 1.0 when n - c < k,
    i.e. every k-subset holds a correct sample.
    """
    _check_args(n, c, k)
    if n - c < k:
        return 1.0
    i = np.arange(n - c + 1, n + 1, dtype=np.float64)  # the c largest factors; empty when c = 0
    return float(1.0 - np.prod(1.0 - k / i))


def pass_at_k_table(
    correct_counts: Sequence[int] | np.ndarray, n: int | Sequence[int] | np.ndarray,
    ks: int | Sequence[int]
) -> np.ndarray:
    """pass@k for each problem: correct_counts[j] of n samples correct on problem j.

    `n` is one number for every problem, or one per problem (when some samples of a problem
    could not be graded). With a single k, returns shape (n_problems,); with a sequence of ks,
    shape (n_problems, len(ks)), column i holding pass@ks[i]. ValueError as in `pass_at_k`.
    """
    counts = np.asarray(correct_counts, dtype=np.int64).reshape(-1)
    ns = np.broadcast_to(np.asarray(n, dtype=np.int64).reshape(-1), counts.shape)
    k_list = [ks] if np.isscalar(ks) else list(ks)
    table = np.array(
        [[pass_at_k(int(n_j), int(c), int(k)) for k in k_list] for c, n_j in zip(counts, ns)],
        dtype=np.float64,
    ).reshape(len(counts), len(k_list))  # (n_problems, n_ks)
    return table[:, 0] if np.isscalar(ks) else table


def bootstrap_pass_at_k(counts: Sequence[int] | np.ndarray,
                        n: int | Sequence[int] | np.ndarray, k: int,
                        n_boot: int = N_BOOT, seed: int = 0,
                        ci: float = 0.95) -> tuple[float, float, float]:
    """Mean pass@k over problems with a percentile bootstrap interval: (mean, lo, hi).

    `counts[j]` is the number of correct samples out of n (or n[j]) on problem j. Problems are
    resampled with replacement n_boot times; the same seed gives the same interval.
    """
    return _mean_interval(pass_at_k_table(counts, n, k), n_boot, seed, ci)


def paired_difference(counts_a: Sequence[int] | np.ndarray,
                      counts_b: Sequence[int] | np.ndarray,
                      n_a: int | Sequence[int] | np.ndarray,
                      n_b: int | Sequence[int] | np.ndarray, k: int,
                      n_boot: int = N_BOOT, seed: int = 0,
                      ci: float = 0.95) -> tuple[float, float, float]:
    """Mean pass@k of condition a minus condition b on the same problems: (diff, lo, hi).

    counts_a[j] and counts_b[j] refer to the same problem j (n_a and n_b samples per problem,
    one number or one per problem).
    Each bootstrap replicate draws one set of problems and uses it for both conditions.
    """
    pa = pass_at_k_table(counts_a, n_a, k)
    pb = pass_at_k_table(counts_b, n_b, k)
    if len(pa) != len(pb):
        raise ValueError(f"paired counts need the same problems; got {len(pa)} and {len(pb)}")
    return _mean_interval(pa - pb, n_boot, seed, ci)


def _mean_interval(per_problem: np.ndarray, n_boot: int, seed: int,
                   ci: float) -> tuple[float, float, float]:
    idx = bootstrap_indices(len(per_problem), n_boot, seed)
    lo, hi = percentile_interval(per_problem[idx].mean(axis=1), ci)  # over (n_boot,) means
    return float(per_problem.mean()), float(lo), float(hi)
