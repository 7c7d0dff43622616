"""The attention budget: logit advantages and the dilution/suppression split (pure numpy).

For one head, with a_j = e^{s_j} / Z, the mass on a key group G is m_G = |G| e^{LME_G} / Z,
so the RSP logit advantage over G is read off two masses exactly:

    delta^G = LME_R - LME_G = log(m_R / k) - log(m_G / |G|).

Against all other keys (|O_t| = n + t - 1, m_O = 1 - m_t) this is the delta_t of the
dilution identity m_t = sigma(log k + delta_t - log(n + t - 1)) (docs/theory.md), and

    logit m_t - logit m_1 = [delta_t - delta_1] - log((n + t - 1) / n)
                             suppression          dilution

exactly: dilution is the part a constant advantage would give (the denominator grows by
the t - 1 generated keys), suppression the change of the advantage itself.
"""

from __future__ import annotations

import numpy as np


def logit(mass):
    """log(m / (1 - m)); +-inf at 1 and 0 (float32 masses a rounding step outside [0, 1]
    are clipped to it)."""
    mass = np.clip(np.asarray(mass, dtype=float), 0.0, 1.0)
    with np.errstate(divide="ignore"):
        return np.log(mass) - np.log1p(-mass)


def group_advantage(mass_rsp, k, mass_group, group_size):
    """delta^G = log(m_R / k) - log(m_G / |G|); nan where the group is empty."""
    mass_rsp, mass_group = np.asarray(mass_rsp, float), np.asarray(mass_group, float)
    size = np.asarray(group_size, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        advantage = np.log(mass_rsp / k) - np.log(mass_group / size)
    return np.where(size > 0, advantage, np.nan)


def rsp_advantage(mass_rsp, k, n, t):
    """delta_t over every other key: logit(m_t) - log k + log(n + t - 1)."""
    t = np.asarray(t, dtype=float)
    return logit(mass_rsp) - np.log(k) + np.log(n + t - 1)


def dilution_part(n, t):
    """The change of logit(m) from step 1 to step t at constant delta: -log((n+t-1)/n)."""
    return -np.log((n + np.asarray(t, dtype=float) - 1) / n)


def logit_decomposition(mass_rsp, k, n, t) -> dict[str, np.ndarray]:
    """Split logit(m_t) - logit(m_1) over steps t (t[0] must be 1) into its two parts.

    mass_rsp [S] per step of one head; returns total, dilution, suppression [S] with
    total == dilution + suppression (exactly, up to rounding) and delta [S].
    """
    t = np.asarray(t, dtype=float)
    if t.size == 0 or t[0] != 1:
        raise ValueError("logit_decomposition needs the steps from step 1")
    delta = rsp_advantage(mass_rsp, k, n, t)
    total = logit(mass_rsp) - logit(mass_rsp[0])
    return {"delta": delta, "total": total, "dilution": dilution_part(n, t),
            "suppression": delta - delta[0]}


def dilution_share(dilution, total) -> float:
    """The fraction of the (mean) change in logit(m) that dilution accounts for: the ratio
    of the summed parts over finite cells; nan when the total change is zero."""
    dilution, total = np.asarray(dilution, float), np.asarray(total, float)
    keep = np.isfinite(dilution) & np.isfinite(total)
    change = total[keep].sum()
    return float(dilution[keep].sum() / change) if change != 0 else float("nan")
