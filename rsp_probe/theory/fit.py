"""Least-squares fits of the mass-decay curves in :mod:`rsp_probe.theory.dilution`.

Each ``fit_*`` takes the decoding steps ``t`` (1-based) and the measured RSP attention mass
``m`` (fraction in [0, 1]) and returns a :class:`CurveFit`. Residuals are ``m - curve(t)`` in
mass units, divided by ``sigma`` when it is given (weighted least squares: a step measured
less precisely, e.g. one only a few prompts reached, counts less); positive parameters are
fitted in log space so they stay positive. Standard errors come from the Jacobian at the
optimum (``s^2 (J^T J)^-1`` with ``s^2 = RSS/(N-p)`` of the weighted residuals, as
``scipy.optimize.curve_fit(..., sigma, absolute_sigma=False)``), mapped to the reported
parameters by the delta method; like that, they assume independent residuals, so the
analysis reports prompt-bootstrap intervals besides them. AIC is the Gaussian-likelihood form
``N log(RSS/N) + 2p`` (weights known up to a common scale); only differences between models
fitted to the same data (and weights) mean anything.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import least_squares
from scipy.special import logit

from rsp_probe.theory.dilution import dilution_mass, exponential, power_law, sink_mass

__all__ = [
    "CurveFit",
    "compare_models",
    "fit_dilution",
    "fit_exponential",
    "fit_power_law",
    "fit_sink",
    "refit",
]

_CURVES: dict[str, Callable[..., np.ndarray]] = {
    "dilution": lambda t, n, k, delta: dilution_mass(t, n, k, delta),
    "sink": lambda t, n, A, S: sink_mass(t, n, A, S),
    "power_law": lambda t, n, a, alpha: power_law(t, n, a, alpha),
    "exponential": lambda t, a, lam, b: exponential(t, a, lam, b),
}


@dataclass(frozen=True)
class CurveFit:
    """One fitted curve.

    Attributes:
        model: ``"dilution"``, ``"sink"``, ``"power_law"`` or ``"exponential"``.
        params: fitted parameters by name (units as in :mod:`rsp_probe.theory.dilution`).
        stderr: asymptotic standard error of each parameter (inf when not identifiable).
        r2: coefficient of determination on the mass scale (NaN if the mass is constant).
        aic: ``N log(RSS/N) + 2p``; lower is better.
        n_points: number of (t, m) points fitted.
        fixed: known constants the curve was evaluated with (``n``, ``k``), not fitted.
    """

    model: str
    params: dict[str, float]
    stderr: dict[str, float]
    r2: float
    aic: float
    n_points: int
    fixed: dict[str, float] = field(default_factory=dict)

    def predict(self, t: ArrayLike) -> np.ndarray:
        """The fitted curve at steps ``t`` (mass, dimensionless)."""
        return _CURVES[self.model](t, **self.fixed, **self.params)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; non-finite numbers become ``None``."""
        return _json_safe(asdict(self))


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _json_safe(val) for key, val in value.items()}
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def _weights(sigma: ArrayLike | None, size: int) -> np.ndarray:
    """``1 / sigma`` per point (ones without sigma); sigma must be finite and > 0."""
    if sigma is None:
        return np.ones(size)
    arr = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (size,))
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError("sigma (per-step standard errors) must be finite and > 0")
    return 1.0 / arr


def _prepare(t: ArrayLike, m: ArrayLike, n_params: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate a mass curve; raise ValueError with a plain message on degenerate input."""
    t_arr = np.asarray(t, dtype=np.float64)
    m_arr = np.asarray(m, dtype=np.float64)
    if t_arr.ndim != 1 or t_arr.shape != m_arr.shape:
        raise ValueError(f"t and m must be 1-D of equal length, got {t_arr.shape}, {m_arr.shape}")
    if not (np.all(np.isfinite(t_arr)) and np.all(np.isfinite(m_arr))):
        raise ValueError("t and m must be finite; drop missing steps before fitting")
    if np.any(t_arr < 1):
        raise ValueError("steps t must be >= 1")
    if np.any(m_arr < 0) or np.any(m_arr > 1):
        raise ValueError("masses must lie in [0, 1]")
    if not np.any(m_arr > 0):
        raise ValueError("every mass is zero: there is no decay to fit")
    if t_arr.size <= n_params:
        raise ValueError(
            f"{t_arr.size} points cannot fit {n_params} parameters with standard errors; "
            f"need at least {n_params + 1}"
        )
    return t_arr, m_arr


def _stderr_theta(jac: np.ndarray, rss: float, n_points: int) -> np.ndarray:
    """Standard errors of the raw parameters from the residual Jacobian.

    A direction the data cannot pin down (a near-zero singular value of ``J``) gives an
    infinite error to the parameters it involves and leaves the others finite.
    """
    n_params = jac.shape[1]
    _, sing, vt = np.linalg.svd(jac, full_matrices=True)
    sing = np.concatenate((sing, np.zeros(n_params - sing.size)))
    tol = np.finfo(np.float64).eps * max(jac.shape) * max(sing[0], np.finfo(np.float64).tiny)
    inv_sq = np.where(sing > tol, 1.0 / np.maximum(sing, tol) ** 2, np.inf)
    loading = vt**2  # [direction, parameter]
    with np.errstate(invalid="ignore"):
        terms = np.where(loading > 1e-12, loading * inv_sq[:, None], 0.0)
    return np.sqrt(terms.sum(axis=0) * (rss / (n_points - n_params)))


def _fit(
    model: str,
    t: np.ndarray,
    m: np.ndarray,
    fixed: dict[str, float],
    names: Sequence[str],
    log_space: Sequence[bool],
    x0: np.ndarray,
    lower: float | np.ndarray = -np.inf,
    weight: np.ndarray | None = None,
) -> CurveFit:
    """Minimise the (weighted) squared mass residuals over raw parameters ``theta`` and
    package the fit; ``weight`` is ``1 / sigma`` per point."""
    log_mask = np.asarray(log_space)
    weight = np.ones_like(m) if weight is None else weight
    curve = _CURVES[model]

    def natural(theta: np.ndarray) -> dict[str, float]:
        values = np.where(log_mask, np.exp(np.where(log_mask, theta, 0.0)), theta)
        return dict(zip(names, values.tolist(), strict=True))

    def residuals(theta: np.ndarray) -> np.ndarray:
        return (curve(t, **fixed, **natural(theta)) - m) * weight

    result = least_squares(residuals, x0, bounds=(lower, np.inf), x_scale="jac", method="trf")
    rss = float(np.sum(result.fun**2))
    n_points, n_params = m.size, len(names)
    params = natural(result.x)
    se_theta = _stderr_theta(result.jac, rss, n_points)
    scale = np.where(log_mask, np.array(list(params.values())), 1.0)
    with np.errstate(invalid="ignore"):  # 0 x inf: a log-space parameter driven to 0
        se_natural = np.where(np.isinf(se_theta), np.inf, se_theta * scale)
    stderr = dict(zip(names, se_natural.tolist(), strict=True))
    centre = np.average(m, weights=weight**2)
    tss = float(np.sum(((m - centre) * weight) ** 2))
    r2 = 1.0 - rss / tss if tss > 0 else math.nan
    aic = n_points * math.log(max(rss, np.finfo(np.float64).tiny) / n_points) + 2 * n_params
    return CurveFit(model, params, stderr, r2, aic, n_points, dict(fixed))


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float] | None:
    """OLS ``(slope, intercept)`` of y on x, or None with fewer than two distinct x."""
    if x.size < 2 or np.ptp(x) == 0:
        return None
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)


def fit_dilution(t: ArrayLike, m: ArrayLike, n: float, k: float,
                 sigma: ArrayLike | None = None) -> CurveFit:
    """Fit ``delta`` (logit units) of ``m_t = k e^delta / (k e^delta + n + t - 1)``;
    ``sigma``: optional standard error of each point (weighted least squares)."""
    t_arr, m_arr = _prepare(t, m, 1)
    inner = (m_arr > 0) & (m_arr < 1)
    guesses = logit(m_arr[inner]) + np.log(n + t_arr[inner] - 1) - np.log(k)
    x0 = np.array([float(np.median(guesses)) if guesses.size else 0.0])
    return _fit("dilution", t_arr, m_arr, {"n": n, "k": k}, ["delta"], [False], x0,
                weight=_weights(sigma, m_arr.size))


def fit_sink(t: ArrayLike, m: ArrayLike, n: float, sigma: ArrayLike | None = None) -> CurveFit:
    """Fit ``A`` and ``S`` (> 0, in units of one ordinary key) of ``A / (A + S + n + t - 1)``.

    Starts from the linearisation ``1/m - 1 = (S + n - 1)/A + t/A``.
    """
    t_arr, m_arr = _prepare(t, m, 2)
    inner = (m_arr > 0) & (m_arr < 1)
    line = _line(t_arr[inner], 1.0 / m_arr[inner] - 1.0)
    a0, s0 = float(np.mean(m_arr)) * (n + float(np.mean(t_arr))), 1.0
    if line is not None and line[0] > 0:
        a0 = 1.0 / line[0]
        s0 = max(line[1] * a0 - n + 1.0, 1e-3)
    x0 = np.log([max(a0, 1e-6), s0])
    return _fit("sink", t_arr, m_arr, {"n": n}, ["A", "S"], [True, True], x0,
                weight=_weights(sigma, m_arr.size))


def fit_power_law(t: ArrayLike, m: ArrayLike, n: float,
                  sigma: ArrayLike | None = None) -> CurveFit:
    """Fit ``a`` (> 0) and ``alpha`` of ``a (n + t - 1)^-alpha``."""
    t_arr, m_arr = _prepare(t, m, 2)
    pos = m_arr > 0
    line = _line(np.log(n + t_arr[pos] - 1), np.log(m_arr[pos]))
    x0 = np.array([line[1], -line[0]]) if line else np.array([np.log(m_arr.max() * n), 1.0])
    return _fit("power_law", t_arr, m_arr, {"n": n}, ["a", "alpha"], [True, False], x0,
                weight=_weights(sigma, m_arr.size))


def fit_exponential(t: ArrayLike, m: ArrayLike, sigma: ArrayLike | None = None) -> CurveFit:
    """Fit ``a``, ``lam`` (1/steps) and the floor ``b`` (all >= 0) of ``b + a e^(-lam (t-1))``."""
    t_arr, m_arr = _prepare(t, m, 3)
    b0 = 0.5 * float(m_arr.min())
    above = m_arr > b0
    line = _line(t_arr[above] - 1.0, np.log(m_arr[above] - b0))
    a0, lam0 = float(m_arr.max() - b0), 0.01
    if line is not None:
        a0, lam0 = math.exp(line[1]), max(-line[0], 1e-4)
    x0 = np.array([max(a0, 1e-9), lam0, max(b0, 1e-9)])
    names = ["a", "lam", "b"]
    return _fit("exponential", t_arr, m_arr, {}, names, [False] * 3, x0, lower=np.zeros(3),
                weight=_weights(sigma, m_arr.size))


def compare_models(t: ArrayLike, m: ArrayLike, n: float, k: float,
                   sigma: ArrayLike | None = None) -> list[CurveFit]:
    """Fit all four curves to one mass curve (weighted by ``1/sigma`` when given); return
    them sorted by AIC, best first."""
    fits = [
        fit_dilution(t, m, n, k, sigma),
        fit_sink(t, m, n, sigma),
        fit_power_law(t, m, n, sigma),
        fit_exponential(t, m, sigma),
    ]
    return sorted(fits, key=lambda fit: fit.aic)


_SPECS = {"dilution": (["delta"], [False]), "sink": (["A", "S"], [True, True]),
          "power_law": (["a", "alpha"], [True, False]),
          "exponential": (["a", "lam", "b"], [False, False, False])}


def refit(fit: CurveFit, t: ArrayLike, m: ArrayLike, sigma: ArrayLike | None = None) -> CurveFit:
    """The same law, with the same fixed constants, fitted to new data (a bootstrap
    resample), starting from ``fit``'s parameters: cheaper than a cold start, and it stays on
    the optimum's branch."""
    names, logs = _SPECS[fit.model]
    t_arr, m_arr = _prepare(t, m, len(names))
    start = [fit.params[name] for name in names]
    x0 = np.array([math.log(max(v, 1e-300)) if lg else v for v, lg in zip(start, logs)])
    lower = -np.inf
    if fit.model == "exponential":
        lower, x0 = np.zeros(3), np.maximum(x0, 1e-9)
    return _fit(fit.model, t_arr, m_arr, dict(fit.fixed), names, logs, x0, lower=lower,
                weight=_weights(sigma, m_arr.size))
