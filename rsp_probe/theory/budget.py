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
from scipy.special import expit
from scipy.stats import t as student_t


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


def pooled_split(mass_1, mass_s, n, s, cluster, n_boot: int = 2000, seed: int = 0) -> dict:
    """The split of the pooled RSP mass's change from step 1 to step s, both parts measured.

    Over cells (trajectory, layer, head) that reached step s: the pooled (mean) mass at step
    1, at step s, and the mass each cell would have at step s had its own advantage stayed at
    its step-1 value, sigma(logit m_1 - log((n+s-1)/n)) (the dilution counterfactual, with
    the cell's own n). Then, exactly, in mass units (fractions of attention),

        pooled m_s - pooled m_1 = [pooled counterfactual - pooled m_1]    dilution
                                + [pooled m_s - pooled counterfactual]    suppression

    Pooling weighs cells by their mass, so a cell of mass exactly 0 enters as 0 rather than
    as an infinite logit; such cells, and cells whose mass rose, are counted. Intervals: the
    estimate +- t(clusters - 1) x the cluster-bootstrap standard error (inflated by
    sqrt(G / (G - 1))), so each contains its estimate.

    Returns a dict: total, dilution, suppression, dilution_share, each (value, low, high),
    and n_cells, n_clusters, zero_1, zero_s, rises.
    """
    mass_1, mass_s = np.asarray(mass_1, float), np.asarray(mass_s, float)
    n = np.broadcast_to(np.asarray(n, float), mass_1.shape)
    counterfactual = expit(logit(mass_1) + dilution_part(n, s))
    labels, index = np.unique(np.asarray(cluster), return_inverse=True)
    n_clusters = labels.size
    onehot = np.eye(n_clusters)[index]  # [cells, clusters]
    sums = np.stack([mass_1, mass_s, counterfactual, np.ones_like(mass_1)]) @ onehot
    draws = np.random.default_rng(seed).integers(0, n_clusters, size=(n_boot, n_clusters))
    weights = (draws[..., None] == np.arange(n_clusters)).sum(axis=1)  # [n_boot, clusters]
    weights = np.vstack([np.ones(n_clusters), weights]).T  # [clusters, 1 + n_boot]
    pooled = sums @ weights  # [4, 1 + n_boot]: column 0 is the estimate
    first, last, dil = (pooled[i] / pooled[3] for i in range(3))
    with np.errstate(divide="ignore", invalid="ignore"):
        parts = {"total": last - first, "dilution": dil - first, "suppression": last - dil,
                 "dilution_share": (dil - first) / (last - first)}
    crit = student_t.ppf(0.975, max(n_clusters - 1, 1)) * np.sqrt(
        n_clusters / max(n_clusters - 1, 1))
    out = {}
    for name, values in parts.items():
        boot = values[1:][np.isfinite(values[1:])]
        se = float(np.std(boot, ddof=1)) if boot.size > 1 else np.nan
        out[name] = (float(values[0]), float(values[0] - crit * se),
                     float(values[0] + crit * se))
    out.update(n_cells=int(mass_1.size), n_clusters=int(n_clusters),
               zero_1=int((mass_1 == 0).sum()), zero_s=int((mass_s == 0).sum()),
               rises=int((mass_s > mass_1).sum()))
    return out
