"""One delta of the dilution law, m = k e^delta / (k e^delta + n_i + t - 1), fitted by least
squares to mass values of many trajectories at once, each with its own prompt length n_i,
with a prompt-cluster bootstrap of the whole fit. It describes curves; it does not test the
law (the calibrated test is rsp_probe.theory.exponent)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.stats import t as student_t

from rsp_probe.theory.dilution import dilution_mass

# delta beyond +-DELTA_BOUND puts the mass within e^-25 of 0 or 1 at every realistic n, t
DELTA_BOUND = 25.0
GRID_STEP = 0.01  # the bootstrap's resolution in delta (the estimate itself is refined)


def _sse(delta: float, m: np.ndarray, t: np.ndarray, n: np.ndarray, k: float) -> float:
    return float(np.sum((m - dilution_mass(t, n, k, delta)) ** 2))


def _grid_sse(m, t, n, k, clusters: np.ndarray, n_clusters: int, grid: np.ndarray) -> np.ndarray:
    """[clusters, grid]: each cluster's sum of squared residuals at every grid delta."""
    out = np.empty((n_clusters, grid.size))
    for j, delta in enumerate(grid):
        out[:, j] = np.bincount(clusters, (m - dilution_mass(t, n, k, delta)) ** 2,
                                minlength=n_clusters)
    return out


def fit_common_delta(m, t, n, k: float, cluster, n_boot: int = 400, seed: int = 0) -> dict:
    """delta (least squares over all points, each point its own n), its interval ci = delta
    +- t(G-1) x the cluster-bootstrap standard error (inflated by sqrt(G/(G-1)), so it
    contains delta), n_boot, and at_bound (the fit ran into +-DELTA_BOUND)."""
    m, t, n = (np.asarray(x, float) for x in (m, t, n))
    labels, clusters = np.unique(np.asarray(cluster), return_inverse=True)
    grid = np.arange(-DELTA_BOUND, DELTA_BOUND + GRID_STEP / 2, GRID_STEP)
    by_cluster = _grid_sse(m, t, n, k, clusters, labels.size, grid)
    start = int(np.argmin(by_cluster.sum(axis=0)))
    lo, hi = grid[max(start - 1, 0)], grid[min(start + 1, grid.size - 1)]
    delta = float(minimize_scalar(_sse, bounds=(lo, hi), method="bounded", args=(m, t, n, k),
                                  options={"xatol": 1e-8}).x)
    G = labels.size
    if G < 2 or n_boot < 2:
        return {"delta": delta, "ci": [float("nan")] * 2, "n_boot": 0,
                "at_bound": bool(abs(delta) > DELTA_BOUND - GRID_STEP)}
    draws = np.random.default_rng(seed).integers(0, G, size=(n_boot, G))
    weights = np.stack([np.bincount(row, minlength=G) for row in draws])  # [n_boot, G]
    boot = grid[np.argmin(weights @ by_cluster, axis=1)]
    se = float(np.std(boot, ddof=1))
    half = student_t.ppf(0.975, G - 1) * np.sqrt(G / (G - 1)) * se
    return {"delta": delta, "ci": [float(delta - half), float(delta + half)], "n_boot": int(n_boot),
            "at_bound": bool(abs(delta) > DELTA_BOUND - GRID_STEP)}
