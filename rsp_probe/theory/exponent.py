"""The dilution law as a test that can fail: the excess exponent, fitted per trajectory.

The identity of docs/theory.md (section 2.1) turns every measured mass into that step's own
logit advantage, ``delta_t = logit(m_t) + log(n + t - 1) - log k``, with each trajectory's
own prompt length ``n``. The dilution law says ``delta_t`` is a constant ``delta_i`` per
trajectory. A power law ``m ~ (n + t - 1)^-alpha`` instead gives
``delta_t = c_i + (1 - alpha) log(n + t - 1)``, so the law is the hypothesis that the
*excess exponent* ``b = 1 - alpha`` is 0:

- constant mass (no dilution): ``b = 1``;
- a power law with ``alpha != 1``: ``b = 1 - alpha``;
- exponential forgetting ``m ~ e^(-lam t)``: ``delta_t`` falls linearly in ``t``, ``b < 0``.

``b`` is the fixed-effects slope of ``delta_t`` on ``x = log(n + t - 1)``: each trajectory
keeps its own intercept ``delta_i`` and its own ``n`` (never a curve averaged over prompts
of different lengths), and one ``b`` is shared by the trajectories of a head. Its interval
is cluster-robust over prompts (trajectories of one prompt, and steps of one trajectory,
may be correlated in any way) with a t critical value on (prompts - 1) degrees of freedom,
so it contains the point estimate by construction, widened on each side by the most that
float32 storage of the masses can move ``b`` (:func:`rounding_bound`): data that follow the
law up to rounding are never rejected for it. Masses of exactly 0 or 1 have no finite
``delta_t``; they are left out and counted. Pure numpy/scipy, vectorised over leading
(replicate) axes so that the calibration (:mod:`rsp_probe.theory.calibration`) is cheap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import t as student_t

__all__ = ["ExponentTest", "excess_exponent", "exponent_test", "rounding_bound"]

LEVEL = 0.95
# Runs store masses as float32: rounding to nearest moves m by at most 2^-24 of itself
FLOAT32_HALF_ULP = 2.0**-24


@dataclass(frozen=True)
class ExponentTest:
    """The excess exponent ``b = 1 - alpha`` of one head (0 under the dilution law) with its
    cluster-robust 95% interval; ``consistent`` when the interval contains 0."""

    excess: float
    ci_low: float
    ci_high: float
    n_points: int
    n_trajectories: int
    n_prompts: int
    n_zero: int  # cells left out because their mass is exactly 0 or 1

    @property
    def consistent(self) -> bool:
        return bool(self.ci_low <= 0.0 <= self.ci_high)

    @property
    def verdict(self) -> str:
        if not np.isfinite(self.ci_low):
            return "not measurable"
        if self.ci_low > 0:
            return "slower than dilution"
        if self.ci_high < 0:
            return "faster than dilution"
        return "consistent"

    def to_dict(self) -> dict:
        return {**asdict(self), "consistent": self.consistent, "verdict": self.verdict}


def excess_exponent(delta: np.ndarray, x: np.ndarray, prompt: np.ndarray,
                    level: float = LEVEL) -> tuple[np.ndarray, ...]:
    """(b, standard error, low, high) of the within-trajectory slope of ``delta`` on ``x``.

    Args:
        delta: [..., I, T] logit advantages per trajectory and step; non-finite = missing.
        x: [I, T] or [..., I, T] ``log(n_i + t - 1)``; non-finite = missing.
        prompt: [I] integer prompt label of each trajectory (the clusters).
        level: coverage of the interval.

    Returns:
        Four arrays shaped like the leading axes of ``delta``; NaN where fewer than two
        prompts or no within-trajectory spread of ``x``.
    """
    delta = np.asarray(delta, dtype=float)
    x = np.broadcast_to(np.asarray(x, dtype=float), delta.shape)
    valid = np.isfinite(delta) & np.isfinite(x)
    count = valid.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        x_mean = np.where(valid, x, 0.0).sum(axis=-1, keepdims=True) / count
        y_mean = np.where(valid, delta, 0.0).sum(axis=-1, keepdims=True) / count
    xc = np.where(valid, x - x_mean, 0.0)  # [..., I, T], zero where missing
    yc = np.where(valid, delta - y_mean, 0.0)
    sxx = (xc**2).sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (xc * yc).sum(axis=(-2, -1)) / sxx
        resid = yc - slope[..., None, None] * xc
        score = (xc * resid).sum(axis=-1)  # [..., I]
        labels, clusters = np.unique(np.asarray(prompt), return_inverse=True)
        onehot = np.eye(labels.size)[clusters]  # [I, P]
        per_prompt = score @ onehot  # [..., P]
        used = (valid.any(axis=-1).astype(float) @ onehot) > 0  # [..., P]
        n_prompts = used.sum(axis=-1)
        n_points = valid.sum(axis=(-2, -1))
        n_params = (count[..., 0] > 0).sum(axis=-1) + 1  # intercepts + the slope
        correction = (n_prompts / (n_prompts - 1)) * ((n_points - 1) / (n_points - n_params))
        se = np.sqrt(correction * (per_prompt**2).sum(axis=-1)) / sxx
        crit = student_t.ppf(0.5 + level / 2, np.maximum(n_prompts - 1, 1))
    bad = (n_prompts < 2) | ~(sxx > 0)
    slope, se = np.where(bad, np.nan, slope), np.where(bad, np.nan, se)
    return slope, se, slope - crit * se, slope + crit * se


def exponent_test(mass: np.ndarray, steps: np.ndarray, n: np.ndarray, k: float,
                  prompt: np.ndarray) -> ExponentTest:
    """The excess-exponent test of one head from its masses.

    Args:
        mass: [I, T] RSP mass per trajectory and step (NaN after a trajectory ended).
        steps: [T] 1-based steps.
        n: [I] each trajectory's input tokens without the RSP (BOS included).
        k: number of RSP vectors.
        prompt: [I] prompt label per trajectory.
    """
    mass = np.asarray(mass, dtype=float)
    present = np.isfinite(mass)
    x = np.log(np.asarray(n, float)[:, None] + np.asarray(steps, float)[None, :] - 1.0)
    with np.errstate(divide="ignore"):
        m = np.clip(mass, 0.0, 1.0)
        delta = np.log(m) - np.log1p(-m) + x - np.log(k)
    delta = np.where(present, delta, np.nan)
    b, _, low, high = excess_exponent(delta, x, prompt)
    finite = np.isfinite(delta)
    slack = rounding_bound(np.where(finite, m, np.nan), np.where(finite, x, np.nan))
    low, high = low - slack, high + slack
    return ExponentTest(float(b), float(low), float(high), int(finite.sum()),
                        int(finite.any(axis=1).sum()),
                        int(np.unique(np.asarray(prompt)[finite.any(axis=1)]).size),
                        int((present & ~finite).sum()))


def rounding_bound(mass: np.ndarray, x: np.ndarray) -> float:
    """The most float32 rounding of the masses can move the within-trajectory slope ``b``.

    A mass rounded to float32 is off by at most 2^-24 of itself, so ``delta_t = logit(m) +
    ...`` is off by at most ``2^-24 / (1 - m)``; the slope is a linear map of the deltas with
    weights ``x~ / sum x~^2`` (``x~`` centred within trajectories), so it moves by at most
    ``max err * sum |x~| / sum x~^2``. ``mass`` and ``x`` are [I, T], NaN where left out.
    """
    valid = np.isfinite(mass) & np.isfinite(x)
    if not valid.any():
        return 0.0
    with np.errstate(invalid="ignore"):
        xc = np.where(valid, x - np.nanmean(np.where(valid, x, np.nan), axis=1,
                                             keepdims=True), 0.0)
    sxx = float((xc**2).sum())
    if sxx <= 0:
        return 0.0
    worst = FLOAT32_HALF_ULP / (1.0 - float(np.max(mass[valid])))
    return worst * float(np.abs(xc).sum()) / sxx
