"""Size and power of the excess-exponent test (rsp_probe.theory.exponent) by simulation.

Synthetic heads copy a measured head's design: each trajectory's own prompt length ``n``,
its own ``delta_i``, its prompt, and which of its cells were measured (trajectory lengths
and the cells whose mass was exactly 0). Onto that, a scenario's change of the logit
advantage along ``x = log(n + t - 1)`` and realistic noise: a stationary AR(1) process along
each trajectory with the head's own residual standard deviation and lag-1 autocorrelation.
The scenarios, all anchored at step 1 (``x1 = log n``):

- ``dilution``: ``delta_t = delta_i`` (the null);
- ``constant mass``: ``logit m_t = logit m_1``, i.e. ``delta_t = delta_i + (x - x1)``;
- ``power law a=0.5`` / ``a=2``: ``logit m_t = logit m_1 - a (x - x1)``;
- ``exponential forgetting``: ``logit m_t = logit m_1 - lam (t - 1)`` with a half-life of
  ``HALF_LIFE`` steps.

The size is the share of null replicates whose interval contains 0 (accepted); the power
against an alternative is the share of its replicates rejected. Pure numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rsp_probe.theory.exponent import excess_exponent

__all__ = ["ALTERNATIVES", "HALF_LIFE", "HeadDesign", "N_REPLICATES", "calibrate", "noise_of",
           "scenario_shift", "simulate"]

HALF_LIFE = 16.0  # steps: forgetting within the middle window, slower than it ends
N_REPLICATES = 100
NULL = "dilution"
ALTERNATIVES = ("constant mass", "power law a=0.5", "power law a=2", "exponential forgetting")
MIN_POWER, MIN_ACCEPTANCE = 0.8, 0.9  # what a "test" must reach; below: "consistency check"


@dataclass(frozen=True)
class HeadDesign:
    """What a synthetic head copies from a measured one. Arrays are [I, T] (trajectory,
    step) except ``prompt`` and ``delta`` [I]."""

    x: np.ndarray  # log(n_i + t - 1)
    steps: np.ndarray  # [T] 1-based
    measured: np.ndarray  # bool: the cell has a finite delta in the real head
    prompt: np.ndarray
    delta: np.ndarray  # each trajectory's mean logit advantage
    sigma: float  # residual standard deviation of delta_t (logit units)
    rho: float  # lag-1 autocorrelation of the residuals along a trajectory


def noise_of(delta: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """(sigma, rho) of a head's residuals: delta_t minus its trajectory mean and the fitted
    excess-exponent trend; rho from consecutive measured steps (0 when undefined)."""
    prompt = np.arange(delta.shape[0])
    slope = excess_exponent(delta, x, prompt)[0]
    valid = np.isfinite(delta) & np.isfinite(x)
    with np.errstate(invalid="ignore"):
        xc = x - np.nanmean(np.where(valid, x, np.nan), axis=1, keepdims=True)
        yc = delta - np.nanmean(np.where(valid, delta, np.nan), axis=1, keepdims=True)
    resid = np.where(valid, yc - (slope if np.isfinite(slope) else 0.0) * xc, np.nan)
    sigma = float(np.nanstd(resid)) if valid.any() else math.nan
    a, b = resid[:, :-1].ravel(), resid[:, 1:].ravel()
    pair = np.isfinite(a) & np.isfinite(b)
    rho = float(np.corrcoef(a[pair], b[pair])[0, 1]) if pair.sum() > 2 else 0.0
    return sigma, (rho if np.isfinite(rho) else 0.0)


def scenario_shift(scenario: str, dilution, elapsed):
    """The change of the RSP's log-odds that `scenario` adds to the dilution law's, from a
    dilution `dilution` (log((n + s - 1) / n)) after `elapsed` = s - 1 steps (exact for the
    scenario's definition; arrays broadcast)."""
    if scenario == NULL:
        return np.zeros_like(dilution)
    if scenario == "constant mass":
        return dilution
    if scenario.startswith("power law a="):
        return (1.0 - float(scenario.split("=")[1])) * dilution
    if scenario == "exponential forgetting":
        return dilution - math.log(2.0) / HALF_LIFE * elapsed
    raise ValueError(f"unknown scenario {scenario!r}")


def _shift(scenario: str, design: HeadDesign) -> np.ndarray:
    """[I, T] change of delta_t from delta_i under `scenario`."""
    rise = design.x - design.x[:, :1]  # x - x1
    return scenario_shift(scenario, rise, design.steps[None, :] - 1.0)


def _ar1(shape: tuple[int, ...], sigma: float, rho: float, rng) -> np.ndarray:
    """Stationary AR(1) noise along the last axis, standard deviation sigma."""
    rho = float(np.clip(rho, -0.99, 0.99))
    innovations = rng.standard_normal(shape) * sigma * math.sqrt(1.0 - rho**2)
    out = np.empty(shape)
    out[..., 0] = rng.standard_normal(shape[:-1]) * sigma
    for step in range(1, shape[-1]):
        out[..., step] = rho * out[..., step - 1] + innovations[..., step]
    return out


def simulate(design: HeadDesign, scenario: str, n_rep: int, rng) -> np.ndarray:
    """[n_rep, I, T] synthetic logit advantages (NaN where the real head had no measure)."""
    shape = (n_rep, *design.x.shape)
    mean = design.delta[:, None] + _shift(scenario, design)
    delta = mean[None] + _ar1(shape, design.sigma, design.rho, rng)
    return np.where(design.measured[None], delta, np.nan)


def calibrate(design: HeadDesign, n_rep: int = N_REPLICATES, seed: int = 0) -> dict[str, float]:
    """Scenario -> share of replicates accepted (the null) or rejected (each alternative)."""
    rng = np.random.default_rng(seed)
    out = {}
    for scenario in (NULL, *ALTERNATIVES):
        _, _, low, high = excess_exponent(simulate(design, scenario, n_rep, rng), design.x,
                                          design.prompt)
        accepted = (low <= 0.0) & (high >= 0.0)
        out[scenario] = float(accepted.mean() if scenario == NULL else 1.0 - accepted.mean())
    return out


def is_test(rates: dict[str, float]) -> bool:
    """A comparison is a test when it keeps its size and has power against every named
    alternative; otherwise it is a consistency check."""
    return (rates[NULL] >= MIN_ACCEPTANCE
            and all(rates[name] >= MIN_POWER for name in ALTERNATIVES))
