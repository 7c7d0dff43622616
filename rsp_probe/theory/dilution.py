"""Closed-form curves for the attention mass a query puts on the RSP keys.

Conventions (see docs/theory.md, section 1):

- ``t`` is the decoding step, 1-based: step 1 is the forward pass that produces generated
  token 1. At step ``t`` the newest query attends over ``n + k + t - 1`` keys.
- ``n`` counts the input tokens excluding the RSP (BOS included, so ``n >= 1``); ``k`` is the
  number of RSP vectors.
- Every mass is a fraction of one query's attention (dimensionless, in [0, 1]); ``delta``,
  ``B`` and logits are in attention-logit units (nats of the softmax).

All curves are vectorised over ``t`` (any array shape; the other arguments broadcast) and
return float64 arrays. They are written as ``expit(log numerator - log rest)`` so that
``delta = -inf`` gives exactly 0, ``delta = +inf`` gives exactly 1, and no exponential of a
large logit is ever formed.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit, logit

__all__ = ["dilution_mass", "envelope", "exponential", "invert_delta", "power_law", "sink_mass"]


def _non_rsp_keys(t: ArrayLike, n: ArrayLike) -> np.ndarray:
    """Number of keys that are not RSP vectors at step ``t``: ``n + t - 1`` (>= 1)."""
    t_arr = np.asarray(t, dtype=np.float64)
    n_arr = np.asarray(n, dtype=np.float64)
    if np.any(np.isnan(t_arr)) or np.any(t_arr < 1):
        raise ValueError("steps t must be >= 1 (step 1 produces the first generated token)")
    if np.any(np.isnan(n_arr)) or np.any(n_arr < 1):
        raise ValueError("n (input tokens excluding the RSP, BOS included) must be >= 1")
    return n_arr + t_arr - 1.0


def _log_positive(x: ArrayLike, name: str) -> np.ndarray:
    """``log x`` for ``x >= 0`` (0 maps to -inf without a warning)."""
    arr = np.asarray(x, dtype=np.float64)
    if np.any(np.isnan(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0")
    with np.errstate(divide="ignore"):
        return np.log(arr)


def dilution_mass(t: ArrayLike, n: ArrayLike, k: ArrayLike, delta: ArrayLike) -> np.ndarray:
    """RSP attention mass under the equal-logit dilution law.

    ``m_t = k e^delta / (k e^delta + n + t - 1)``, where ``delta`` (logit units) is how far the
    query's logits on the RSP keys sit above those on the other keys. The formula is exact
    when ``delta`` is the difference of the log-mean-exp of the two groups of logits.

    Args:
        t: decoding steps (>= 1), any shape.
        n: input tokens excluding the RSP (>= 1).
        k: number of RSP vectors (> 0).
        delta: logit advantage of the RSP keys; may be +-inf.

    Returns:
        Mass in [0, 1], shape of ``t`` broadcast against the other arguments.
    """
    k_arr = np.asarray(k, dtype=np.float64)
    if np.any(np.isnan(k_arr)) or np.any(k_arr <= 0):
        raise ValueError("k (number of RSP vectors) must be > 0")
    delta_arr = np.asarray(delta, dtype=np.float64)
    if np.any(np.isnan(delta_arr)):
        raise ValueError("delta must not be NaN")
    rest = _non_rsp_keys(t, n)
    return expit(np.log(k_arr) + delta_arr - np.log(rest))


def invert_delta(m: ArrayLike, t: ArrayLike, n: ArrayLike, k: ArrayLike) -> np.ndarray:
    """The step's own logit advantage from its measured mass, by inverting the identity.

    ``m_t = sigma(log k + delta_t - log(n + t - 1))`` holds exactly for every query when
    ``delta_t`` is the log-mean-exp of the RSP logits minus that of the other logits, so
    ``delta_t = logit(m_t) + log(n + t - 1) - log k``: a measurement at each step, unlike
    the constant ``delta`` that :func:`dilution_mass` assumes. Masses of exactly 0 or 1 give
    -inf / +inf.
    """
    m_arr = np.asarray(m, dtype=np.float64)
    if np.any(np.isnan(m_arr)) or np.any(m_arr < 0) or np.any(m_arr > 1):
        raise ValueError("masses must lie in [0, 1]")
    k_arr = np.asarray(k, dtype=np.float64)
    if np.any(np.isnan(k_arr)) or np.any(k_arr <= 0):
        raise ValueError("k (number of RSP vectors) must be > 0")
    with np.errstate(divide="ignore"):
        return logit(m_arr) + np.log(_non_rsp_keys(t, n)) - np.log(k_arr)


def envelope(t: ArrayLike, n: ArrayLike, k: ArrayLike, B: float) -> tuple[np.ndarray, np.ndarray]:
    """Bounds on the RSP mass of any head whose logits all lie in ``[-B, B]``.

    The mass grows with the RSP logits and shrinks with the others, so it is smallest with
    RSP logits at ``-B`` and the rest at ``+B`` (``delta = -2B``) and largest the other way
    round (``delta = +2B``). Unlike :func:`dilution_mass` this needs no equal-logit idealisation.

    Args:
        t: decoding steps (>= 1).
        n: input tokens excluding the RSP (>= 1).
        k: number of RSP vectors (> 0).
        B: bound on the absolute attention logits (>= 0, logit units; may be inf).

    Returns:
        ``(lower, upper)`` masses in [0, 1], each shaped like ``t``.
    """
    if np.isnan(B) or B < 0:
        raise ValueError("B (bound on |attention logits|) must be >= 0")
    return dilution_mass(t, n, k, -2.0 * B), dilution_mass(t, n, k, 2.0 * B)


def sink_mass(t: ArrayLike, n: ArrayLike, A: ArrayLike, S: ArrayLike) -> np.ndarray:
    """RSP attention mass with an attention sink: ``A / (A + S + n + t - 1)``.

    Args:
        t: decoding steps (>= 1).
        n: input tokens excluding the RSP (>= 1).
        A: effective weight of the RSP keys, ``k e^delta`` (>= 0, in units of one ordinary key).
        S: extra weight of the sink tokens beyond an ordinary key (>= 0, same units).

    Returns:
        Mass in [0, 1], shaped like ``t``.
    """
    log_a = _log_positive(A, "A (effective RSP weight)")
    s_arr = np.asarray(S, dtype=np.float64)
    if np.any(np.isnan(s_arr)) or np.any(s_arr < 0):
        raise ValueError("S (extra sink weight) must be >= 0")
    rest = _non_rsp_keys(t, n) + s_arr
    return expit(log_a - np.log(rest))


def power_law(t: ArrayLike, n: ArrayLike, a: ArrayLike, alpha: ArrayLike) -> np.ndarray:
    """Plain power-law decay in the number of non-RSP keys: ``a (n + t - 1)^-alpha``.

    Using ``n + t - 1`` (rather than ``t``) makes the dilution law's tail exactly this curve
    with ``alpha = 1`` and ``a = k e^delta``. The curve is not clipped to [0, 1].

    Args:
        t: decoding steps (>= 1).
        n: input tokens excluding the RSP (>= 1).
        a: mass scale (>= 0; the mass at ``n + t - 1 = 1``).
        alpha: decay exponent (dimensionless).

    Returns:
        Curve values, shaped like ``t``.
    """
    log_a = _log_positive(a, "a (power-law scale)")
    alpha_arr = np.asarray(alpha, dtype=np.float64)
    rest = _non_rsp_keys(t, n)
    return np.exp(log_a - alpha_arr * np.log(rest))


def exponential(t: ArrayLike, a: ArrayLike, lam: ArrayLike, b: ArrayLike = 0.0) -> np.ndarray:
    """Exponential decay to a floor: ``b + a exp(-lam (t - 1))``.

    The alternative to dilution: with ``b > 0`` the head keeps a constant share ``b`` forever.

    Args:
        t: decoding steps (>= 1).
        a: mass above the floor at step 1 (>= 0).
        lam: decay rate per step (>= 0, 1/steps).
        b: floor the mass decays to (>= 0).

    Returns:
        Curve values, shaped like ``t``.
    """
    t_arr = np.asarray(t, dtype=np.float64)
    if np.any(np.isnan(t_arr)) or np.any(t_arr < 1):
        raise ValueError("steps t must be >= 1 (step 1 produces the first generated token)")
    a_arr, lam_arr, b_arr = (np.asarray(v, dtype=np.float64) for v in (a, lam, b))
    if np.any(a_arr < 0) or np.any(lam_arr < 0) or np.any(b_arr < 0):
        raise ValueError("a, lam and b must be >= 0")
    return b_arr + a_arr * np.exp(-lam_arr * (t_arr - 1.0))
