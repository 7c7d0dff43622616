"""Log-log slopes with bootstrap confidence intervals, for the scaling laws of docs/theory.md.

The first-order theory predicts slope 1 for total variation against RSP attention mass and
slope 2 for KL divergence against mass. :func:`loglog_slope` estimates such a slope by OLS of
``log y`` on ``log x`` and gives a percentile bootstrap interval; when points come in groups
(several steps of one prompt) whole groups are resampled, since points within a group are
not independent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["SlopeEstimate", "loglog_slope"]

_CHUNK_CELLS = 2_000_000


@dataclass(frozen=True)
class SlopeEstimate:
    """A log-log slope (dimensionless: d log y / d log x) with its bootstrap interval.

    Attributes:
        slope: OLS slope of ``log y`` on ``log x``.
        ci_low: lower end of the percentile bootstrap interval.
        ci_high: upper end of the percentile bootstrap interval.
        n_points: points used (those with ``x > 0`` and ``y > 0``, both finite).
    """

    slope: float
    ci_low: float
    ci_high: float
    n_points: int

    def to_dict(self) -> dict[str, float | int]:
        """Plain dict for JSON."""
        return asdict(self)


def _weighted_slopes(lx: np.ndarray, ly: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """OLS slopes of ``ly`` on ``lx`` for each row of ``weights`` ([n_boot, N] counts)."""
    total = weights.sum(axis=1, keepdims=True)
    mx = (weights * lx).sum(axis=1, keepdims=True) / total
    my = (weights * ly).sum(axis=1, keepdims=True) / total
    dx = lx - mx  # [n_boot, N]
    sxx = (weights * dx * dx).sum(axis=1)
    sxy = (weights * dx * (ly - my)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sxx > 0, sxy / sxx, np.nan)


def _bootstrap_slopes(
    lx: np.ndarray, ly: np.ndarray, group_index: np.ndarray, n_boot: int, seed: int
) -> np.ndarray:
    """Slopes of ``n_boot`` resamples that draw whole groups with replacement.

    A resample is a row of multiplicities per point; rows are built in chunks of about
    ``_CHUNK_CELLS`` numbers so memory stays bounded for long inputs.
    """
    rng = np.random.default_rng(seed)
    n_groups = int(group_index.max()) + 1
    uniform = np.full(n_groups, 1.0 / n_groups)
    rows = max(1, _CHUNK_CELLS // lx.size)
    out = []
    for start in range(0, n_boot, rows):
        size = min(rows, n_boot - start)
        counts = rng.multinomial(n_groups, uniform, size=size)  # [size, n_groups]
        out.append(_weighted_slopes(lx, ly, counts[:, group_index].astype(np.float64)))
    return np.concatenate(out)


def loglog_slope(
    x: ArrayLike,
    y: ArrayLike,
    n_boot: int = 1000,
    seed: int = 0,
    groups: ArrayLike | None = None,
    level: float = 0.95,
) -> SlopeEstimate:
    """Slope of ``log y`` against ``log x`` with a percentile bootstrap interval.

    Points with a non-positive or non-finite ``x`` or ``y`` are dropped (their log is
    undefined). Resamples whose ``x`` values are all equal have no slope and are skipped.

    Args:
        x: positive abscissa, e.g. RSP attention mass (any units; the slope does not depend
            on them).
        y: positive ordinate, e.g. KL divergence in nats or total variation.
        n_boot: bootstrap resamples; 0 gives a NaN interval.
        seed: seed of the bootstrap generator.
        groups: optional label per point (e.g. prompt id); whole groups are resampled.
        level: coverage of the interval, in (0, 1).

    Returns:
        The slope, the interval and the number of points used.
    """
    x_arr = np.asarray(x, dtype=np.float64).ravel()
    y_arr = np.asarray(y, dtype=np.float64).ravel()
    if x_arr.shape != y_arr.shape:
        raise ValueError(f"x and y must have the same size, got {x_arr.size} and {y_arr.size}")
    if not 0 < level < 1:
        raise ValueError("level must lie in (0, 1)")
    keep = np.isfinite(x_arr) & np.isfinite(y_arr) & (x_arr > 0) & (y_arr > 0)
    lx, ly = np.log(x_arr[keep]), np.log(y_arr[keep])
    if lx.size < 2 or np.ptp(lx) == 0:
        raise ValueError("need at least two positive points with distinct x to fit a slope")
    slope = float(_weighted_slopes(lx, ly, np.ones((1, lx.size)))[0])
    if groups is None:
        group_index = np.arange(lx.size)
    else:
        labels = np.asarray(groups).ravel()
        if labels.shape != x_arr.shape:
            raise ValueError("groups must have one label per point")
        _, group_index = np.unique(labels[keep], return_inverse=True)
        if group_index.max() < 1:
            raise ValueError("a group bootstrap needs at least two groups with usable points")
    if n_boot <= 0:
        return SlopeEstimate(slope, float("nan"), float("nan"), int(lx.size))
    slopes = _bootstrap_slopes(lx, ly, group_index, n_boot, seed)
    slopes = slopes[np.isfinite(slopes)]
    if slopes.size == 0:
        return SlopeEstimate(slope, float("nan"), float("nan"), int(lx.size))
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(slopes, [tail, 100.0 - tail])
    return SlopeEstimate(slope, float(low), float(high), int(lx.size))
