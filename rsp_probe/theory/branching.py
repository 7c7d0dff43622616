"""When do two generations with different RSP draws first diverge? (docs/theory.md, section 4)

Steps are 1-based as everywhere in :mod:`rsp_probe.theory`: step ``t`` produces generated
token ``t``. A per-step hazard ``h_t`` is the probability that step ``t`` is the first
divergence given that steps ``1..t-1`` agreed; the first-divergence distribution is then
``P(first = t) = h_t prod_{s<t} (1 - h_s)``, and what is left is the probability of never
diverging within the horizon ``T``.

- Greedy decoding: step ``t`` diverges when the RSP's push on the logits, taken to be
  ``c m_t`` (``c`` in logits per unit of RSP attention mass), overturns the top-1 margin;
  see :mod:`rsp_probe.theory.greedy`.
- Temperature sampling: two samples from distributions ``p`` and ``q`` disagree with
  probability ``1 - sum_v p(v) q(v)`` (``1 - sum_v p(v)^2`` when ``q = p``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import logsumexp

__all__ = [
    "DivergencePMF",
    "collision_hazard",
    "collision_hazard_from_logits",
    "distribution_distance",
    "divergence_counts",
    "first_divergence_pmf",
    "pair_overlap",
    "simulated_tv_null",
]


@dataclass(frozen=True)
class DivergencePMF:
    """Distribution of the first divergence step over a horizon of ``T`` steps.

    Attributes:
        pmf: ``[T]`` probabilities; ``pmf[i]`` is P(first divergence at step ``i + 1``).
        never: probability of no divergence within the ``T`` steps.
    """

    pmf: np.ndarray
    never: float

    @property
    def horizon(self) -> int:
        """Number of steps ``T`` covered."""
        return int(self.pmf.size)

    def as_array(self) -> np.ndarray:
        """``[T + 1]`` array: the step probabilities followed by the never-diverged mass."""
        return np.append(self.pmf, self.never)

    @classmethod
    def from_counts(cls, counts: ArrayLike) -> DivergencePMF:
        """Empirical distribution from ``[T + 1]`` counts laid out as :meth:`as_array`."""
        arr = np.asarray(counts, dtype=np.float64)
        if arr.ndim != 1 or arr.size < 2 or np.any(arr < 0) or arr.sum() <= 0:
            raise ValueError("counts must be a 1-D array of T + 1 >= 2 non-negative numbers")
        arr = arr / arr.sum()
        return cls(arr[:-1], float(arr[-1]))

    def to_dict(self) -> dict[str, list[float] | float]:
        """Plain dict for JSON."""
        return {"pmf": self.pmf.tolist(), "never": self.never}


def collision_hazard(
    probs: ArrayLike | None = None,
    *,
    other: ArrayLike | None = None,
    sum_sq: ArrayLike | None = None,
) -> np.ndarray:
    """Per-step probability that two samples differ: ``1 - sum_v p(v) q(v)``.

    Pass either ``probs`` (``[..., T, V]`` probabilities, already tempered), optionally with
    ``other`` (same shape, the second trajectory's distribution; defaults to ``probs``), or
    ``sum_sq`` (``[..., T]`` precomputed ``sum_v p(v)^2`` or overlap). Returns ``[..., T]``
    hazards in [0, 1]; NaN inputs (missing steps) give NaN.
    """
    if (probs is None) == (sum_sq is None):
        raise ValueError("pass exactly one of probs and sum_sq")
    if sum_sq is not None:
        if other is not None:
            raise ValueError("other goes with probs, not with sum_sq")
        overlap = np.asarray(sum_sq, dtype=np.float64)
    else:
        p = _check_probs(probs, "probs")
        q = p if other is None else _check_probs(other, "other")
        if q.shape != p.shape:
            raise ValueError(f"probs and other differ in shape: {p.shape} vs {q.shape}")
        overlap = np.sum(p * q, axis=-1)
    with np.errstate(invalid="ignore"):
        if np.any(overlap < -1e-9) or np.any(overlap > 1 + 1e-6):
            raise ValueError("a collision probability must lie in [0, 1]")
    return np.clip(1.0 - overlap, 0.0, 1.0)


def _check_probs(probs: ArrayLike, name: str) -> np.ndarray:
    """Probabilities over the last axis: non-negative, summing to 1 (within 1e-3)."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim < 1:
        raise ValueError(f"{name} needs a vocabulary axis")
    with np.errstate(invalid="ignore"):
        totals = p.sum(axis=-1)
        bad = np.any(p < 0) or np.any(np.abs(totals - 1.0) > 1e-3)
    if bad:
        raise ValueError(f"{name} must be non-negative and sum to 1 over the last axis")
    return p


def collision_hazard_from_logits(
    logits: ArrayLike, tau: float = 1.0, other_logits: ArrayLike | None = None
) -> np.ndarray:
    """:func:`collision_hazard` of the tempered distributions ``softmax(logits / tau)``.

    Computed in log space (``log sum p q = LSE(l/tau + l'/tau) - LSE(l/tau) - LSE(l'/tau)``)
    so large logits and small ``tau`` (> 0) do not overflow. Shapes ``[..., T, V] -> [..., T]``.
    """
    if not tau > 0:
        raise ValueError("temperature tau must be > 0 (greedy decoding uses greedy_hazard)")
    a = np.asarray(logits, dtype=np.float64) / tau
    b = a if other_logits is None else np.asarray(other_logits, dtype=np.float64) / tau
    if a.shape != b.shape:
        raise ValueError(f"logits and other_logits differ in shape: {a.shape} vs {b.shape}")
    log_overlap = logsumexp(a + b, axis=-1) - logsumexp(a, axis=-1) - logsumexp(b, axis=-1)
    return np.clip(-np.expm1(log_overlap), 0.0, 1.0)


def first_divergence_pmf(hazards: ArrayLike) -> DivergencePMF:
    """``P(first = t) = h_t prod_{s<t} (1 - h_s)`` and the never-diverged mass ``prod (1 - h)``.

    Args:
        hazards: ``[T]`` per-step hazards in [0, 1]; NaN is rejected (truncate the horizon
            instead of guessing a hazard for a step with no data).
    """
    h = np.asarray(hazards, dtype=np.float64)
    if h.ndim != 1 or h.size == 0:
        raise ValueError("hazards must be a non-empty 1-D array over steps")
    if not np.all(np.isfinite(h)) or np.any(h < 0) or np.any(h > 1):
        raise ValueError("hazards must be finite and in [0, 1]; truncate steps without data")
    survive = np.cumprod(1.0 - h)
    before = np.concatenate(([1.0], survive[:-1]))
    return DivergencePMF(h * before, float(survive[-1]))


def divergence_counts(first_steps: ArrayLike, horizon: int) -> np.ndarray:
    """Histogram of observed first-divergence steps, laid out as :meth:`DivergencePMF.as_array`.

    Args:
        first_steps: 1-based first-divergence step per pair of trajectories; NaN (or a step
            beyond ``horizon``) means no divergence within the horizon.
        horizon: number of steps ``T``.

    Returns:
        ``[T + 1]`` integer counts; the last entry counts the never-diverged pairs.
    """
    steps = np.asarray(first_steps, dtype=np.float64).ravel()
    diverged = ~np.isnan(steps) & (steps <= horizon)
    values = steps[diverged]
    if np.any(values < 1) or np.any(values != np.round(values)):
        raise ValueError("first-divergence steps must be whole numbers >= 1 (NaN for never)")
    counts = np.bincount(values.astype(np.int64) - 1, minlength=horizon)
    return np.append(counts, steps.size - values.size)


def _as_pmf_array(dist: DivergencePMF | ArrayLike) -> np.ndarray:
    arr = dist.as_array() if isinstance(dist, DivergencePMF) else np.asarray(dist, float)
    if arr.ndim != 1 or abs(arr.sum() - 1.0) > 1e-6 or np.any(arr < 0):
        raise ValueError("a first-divergence distribution is a 1-D array summing to 1")
    return arr


def distribution_distance(
    observed_pmf: DivergencePMF | ArrayLike, predicted_pmf: DivergencePMF | ArrayLike
) -> float:
    """Total variation ``1/2 sum |p - q|`` over the steps and the never-diverged outcome."""
    p, q = _as_pmf_array(observed_pmf), _as_pmf_array(predicted_pmf)
    if p.shape != q.shape:
        raise ValueError(f"distributions cover different horizons: {p.size - 1} vs {q.size - 1}")
    return float(0.5 * np.abs(p - q).sum())


def pair_overlap(probs_a: ArrayLike, probs_b: ArrayLike, first: int | None) -> np.ndarray:
    """``sum_v p_a(v) p_b(v)`` at steps ``1..first`` (all steps when ``first`` is None).

    ``probs_a``/``probs_b``: ``[T, V]`` each trajectory's own tempered next-token
    distribution along its own tokens (teacher-forced); at steps up to the first divergence
    both condition on the same prefix, so their product is the probability that two samples
    agree there. Returns ``[min(first, T)]`` overlaps.
    """
    p, q = _check_probs(probs_a, "probs_a"), _check_probs(probs_b, "probs_b")
    if p.ndim != 2 or q.ndim != 2 or p.shape[1] != q.shape[1]:
        raise ValueError("probs_a and probs_b must be [T, V] over one vocabulary")
    last = min(p.shape[0], q.shape[0]) if first is None else first
    if last > min(p.shape[0], q.shape[0]):
        raise ValueError(f"first divergence {first} is beyond the shorter trajectory")
    return np.einsum("tv,tv->t", p[:last], q[:last])


def simulated_tv_null(predicted: DivergencePMF | ArrayLike, n_pairs: int, observed_tv: float,
                      n_sim: int = 2000, seed: int = 0) -> dict[str, float]:
    """How large a TV a correct prediction would show with ``n_pairs`` pairs: multinomial
    histograms drawn from ``predicted``, their TV to it, and the share at least as large as
    ``observed_tv`` (p-value). Pairs of one prompt share trajectories, so treating them as
    independent makes the null too narrow: a small p-value is a weaker rejection than it
    looks, a large one is conclusive."""
    q = _as_pmf_array(predicted)
    if n_pairs < 1 or n_sim < 1:
        raise ValueError("n_pairs and n_sim must be >= 1")
    draws = np.random.default_rng(seed).multinomial(n_pairs, q, size=n_sim) / n_pairs
    null = 0.5 * np.abs(draws - q).sum(axis=1)
    return {"p_value": float(np.mean(null >= observed_tv - 1e-12)),
            "null_median": float(np.median(null)), "null_q95": float(np.quantile(null, 0.95)),
            "n_sim": int(n_sim)}
