"""Greedy decoding: the hazard that the RSP's push ``c m_t`` overturns the top-1 margin.

See docs/theory.md, section 4.1. Steps are 1-based; margins are top-1 minus top-2 logits
(logit units), masses are fractions of one query's attention, and ``c`` is in logits per
unit of RSP mass. The first-divergence distribution itself is in
:mod:`rsp_probe.theory.branching`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from rsp_probe.theory.branching import (
    DivergencePMF,
    distribution_distance,
    first_divergence_pmf,
)

__all__ = ["GreedyFit", "fit_greedy_c", "greedy_hazard"]

_LOG_FLOOR = 1e-12  # probabilities below this count as this in a log-likelihood


@dataclass(frozen=True)
class GreedyFit:
    """Maximum-likelihood fit of the greedy constant ``c`` (logits per unit RSP mass).

    The likelihood is flat between consecutive observed ratios ``margin / mass``, so the
    estimate is a whole interval; ``c`` is its geometric midpoint.

    Attributes:
        c: point estimate.
        c_low: lower end of the maximum-likelihood interval.
        c_high: upper end (inf when every larger ``c`` fits equally well).
        log_likelihood: multinomial log-likelihood of the observed counts, nats.
        predicted: first-divergence distribution implied by ``c``; its horizon ends at the
            last step with a sample (later divergences count as "never").
        observed: empirical first-divergence distribution over the same horizon.
        tv: total variation between ``observed`` and ``predicted``.
        n_trajectories: number of observed pairs (diverged or not).
    """

    c: float
    c_low: float
    c_high: float
    log_likelihood: float
    predicted: DivergencePMF
    observed: DivergencePMF
    tv: float
    n_trajectories: int

    def to_dict(self) -> dict[str, object]:
        """Plain dict for JSON (an infinite ``c_high`` becomes ``None``)."""
        return {
            "c": self.c,
            "c_low": self.c_low,
            "c_high": self.c_high if math.isfinite(self.c_high) else None,
            "log_likelihood": self.log_likelihood,
            "predicted": self.predicted.to_dict(),
            "observed": self.observed.to_dict(),
            "tv": self.tv,
            "n_trajectories": self.n_trajectories,
        }


def _ratios(margins: ArrayLike, masses: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """``margin / mass`` per sample and step (inf where mass is 0), and the present-mask."""
    mg = np.asarray(margins, dtype=np.float64)
    ms = np.asarray(masses, dtype=np.float64)
    if mg.ndim != 2 or mg.shape != ms.shape:
        raise ValueError(
            f"margins and masses must both be [n_samples, T], got {mg.shape} and {ms.shape}"
        )
    present = ~(np.isnan(mg) | np.isnan(ms))
    if np.any(mg[present] < 0) or np.any(ms[present] < 0):
        raise ValueError("margins (top-1 minus top-2 logit) and masses must be >= 0")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(ms > 0, mg / ms, np.inf)
    return np.where(present, ratio, np.nan), present


def _hazards_for(ratio: np.ndarray, present: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Hazards ``[len(c), T]``: share of present samples at each step with ``ratio < c``."""
    n_present = present.sum(axis=0)  # [T]
    out = np.full((c.size, ratio.shape[1]), np.nan)
    for step in np.flatnonzero(n_present):
        column = np.sort(ratio[present[:, step], step])
        out[:, step] = np.searchsorted(column, c, side="left") / n_present[step]
    return out


def greedy_hazard(margins: ArrayLike, masses: ArrayLike, c: float) -> np.ndarray:
    """Per-step greedy hazard ``P(margin_t < c m_t)`` estimated over samples.

    Args:
        margins: ``[n_samples, T]`` top-1 minus top-2 logit (logit units, >= 0) along the
            shared prefix; NaN where a sample has no step ``t`` (e.g. it already diverged,
            which is how the conditioning on "no earlier divergence" enters).
        masses: ``[n_samples, T]`` RSP attention mass (fraction), NaN where missing.
        c: logit shift per unit RSP mass (>= 0).

    Returns:
        ``[T]`` hazards in [0, 1]; NaN at steps with no sample.
    """
    if not c >= 0:
        raise ValueError("c must be >= 0")
    ratio, present = _ratios(margins, masses)
    return _hazards_for(ratio, present, np.array([float(c)]))[0]


def _log_likelihoods(hazards: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Multinomial log-likelihood of ``counts`` [T+1] under each row of ``hazards`` [C, T]."""
    survive = np.cumprod(1.0 - hazards, axis=1)
    before = np.concatenate((np.ones((hazards.shape[0], 1)), survive[:, :-1]), axis=1)
    probs = np.concatenate((hazards * before, survive[:, -1:]), axis=1)  # [C, T + 1]
    return (counts * np.log(np.maximum(probs, _LOG_FLOOR))).sum(axis=1)


def _representatives(lows: np.ndarray, highs: np.ndarray) -> np.ndarray:
    """A value of ``c`` strictly inside each plateau ``(low, high]`` (geometric midpoint)."""
    with np.errstate(invalid="ignore"):
        inner = np.where(lows > 0, np.sqrt(lows) * np.sqrt(highs), 0.5 * highs)
    return np.where(np.isinf(highs), np.maximum(2.0 * lows, 1.0), inner)


def _search_c(
    ratio: np.ndarray, present: np.ndarray, counts: np.ndarray, max_candidates: int
) -> tuple[float, float, float]:
    """Best plateau ``(low, high]`` of ``c`` and its log-likelihood, coarse to fine.

    Hazards count ``ratio < c``, so they are constant for ``c`` between consecutive distinct
    ratios: with at most ``max_candidates`` distinct ratios every plateau is evaluated and
    the maximum is exact. With more, plateaus are merged at quantiles, the best merged cell
    and its two neighbours are kept and searched again (exact if the likelihood is
    unimodal in ``c``).
    """
    values = np.unique(ratio[np.isfinite(ratio)])
    low, high = 0.0, np.inf
    while True:
        inside = values[(values > low) & (values < high)]
        exact = inside.size <= max_candidates
        grid = np.linspace(0.0, 1.0, max_candidates)
        edges = inside if exact else np.unique(np.quantile(inside, grid))
        lows = np.concatenate(([low], edges))
        highs = np.concatenate((edges, [high]))
        loglik = _log_likelihoods(
            _hazards_for(ratio, present, _representatives(lows, highs)), counts
        )
        best = int(np.argmax(loglik))
        if exact:
            return float(lows[best]), float(highs[best]), float(loglik[best])
        low = float(lows[max(best - 1, 0)])
        high = float(highs[min(best + 1, highs.size - 1)])


def _truncate_horizon(
    ratio: np.ndarray, present: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut the horizon after the last step with a sample; later counts become "never".

    Once every sample has diverged nothing is known about later hazards, so divergences
    after that step are pooled with the never-diverged pairs. A step without samples
    before the last sampled one is an error in the data.
    """
    has_sample = present.any(axis=0)
    if not has_sample.any():
        raise ValueError("margins and masses hold no sample at any step")
    horizon = int(np.flatnonzero(has_sample)[-1]) + 1
    if not has_sample[:horizon].all():
        raise ValueError("a step without samples precedes sampled steps; check the NaN mask")
    pooled = np.append(counts[:horizon], counts[horizon:].sum())
    return ratio[:, :horizon], present[:, :horizon], pooled


def fit_greedy_c(
    margins: ArrayLike,
    masses: ArrayLike,
    observed_counts: ArrayLike,
    *,
    max_candidates: int = 4096,
) -> GreedyFit:
    """Maximum-likelihood ``c`` for the greedy hazard against observed first divergences.

    The hazards change only where ``c`` crosses an observed ratio ``margin / mass``, so the
    likelihood is piecewise constant in ``c`` and a continuous optimiser (such as
    ``minimize_scalar`` on ``log c``) would stall on a plateau. The plateaus are searched
    instead, coarse to fine (at most ``max_candidates`` per pass).

    Args:
        margins: ``[n_samples, T]`` as in :func:`greedy_hazard`. The horizon is cut after
            the last step with a sample (see :func:`_truncate_horizon`).
        masses: ``[n_samples, T]`` RSP attention mass.
        observed_counts: ``[T + 1]`` counts from :func:`divergence_counts`.
        max_candidates: most plateau edges evaluated in one pass (>= 8); memory grows as
            ``max_candidates * T``.
    """
    if max_candidates < 8:
        raise ValueError("max_candidates must be >= 8")
    ratio, present = _ratios(margins, masses)
    counts = np.asarray(observed_counts, dtype=np.float64)
    if counts.shape != (ratio.shape[1] + 1,):
        raise ValueError(f"observed_counts must have T + 1 = {ratio.shape[1] + 1} entries")
    ratio, present, counts = _truncate_horizon(ratio, present, counts)
    low, high, loglik = _search_c(ratio, present, counts, max_candidates)
    c = float(_representatives(np.array([low]), np.array([high]))[0])
    predicted = first_divergence_pmf(_hazards_for(ratio, present, np.array([c]))[0])
    observed = DivergencePMF.from_counts(counts)
    return GreedyFit(
        c=c,
        c_low=low,
        c_high=high,
        log_likelihood=loglik,
        predicted=predicted,
        observed=observed,
        tv=distribution_distance(observed, predicted),
        n_trajectories=round(float(counts.sum())),
    )
