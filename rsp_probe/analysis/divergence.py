"""First divergence of trajectory pairs, observed against the theory's hazards. No torch.

Greedy decoding with RSP draws: h_t = P(margin_t < c m_t), c fitted by maximum likelihood
(rsp_probe.theory.fit_greedy_c) from the pairs' margins and RSP masses along their shared
prefix. Temperature sampling: two trajectories sharing a prefix split at step t with
probability 1 - sum_v p_t(v) q_t(v), estimated as 1 - sqrt(C_a(t) C_b(t)) from the stored
collision probabilities C = sum_v p_tau(v)^2 (exact when both share one distribution, i.e.
without an RSP). Observed and predicted hazards are averaged over the pairs still together
at each step (at risk), then turned into first-divergence distributions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rsp_probe.analysis.branching import per_step_arrays
from rsp_probe.analysis.prefix_tree import NEVER, first_divergence_steps
from rsp_probe.probes.names import ATTENTION_PROBE, COLLISION_PROBE
from rsp_probe.runs import Run
from rsp_probe.theory import distribution_distance, first_divergence_pmf, fit_greedy_c


def divergence_counts(rows: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """[prompt, horizon + 1] pair counts by first-divergence step; last column = never."""
    steps = rows["step"].where(rows["step"] != NEVER, horizon + 1)
    table = pd.crosstab(rows["prompt_id"], steps, values=rows["count"], aggfunc="sum")
    return table.reindex(columns=range(1, horizon + 2), fill_value=0).fillna(0)


def greedy_pair_samples(run: Run, condition: str, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Per pair: mean margin and mass of its two trajectories along the shared prefix."""
    margins, masses = per_step_arrays(run, "margin"), per_step_arrays(run, ATTENTION_PROBE)
    traj = run.trajectories[run.trajectories["condition"] == condition]
    pair_margins, pair_masses = [], []
    for _, group in traj.groupby("prompt_id", sort=True):
        ids = group["id"].tolist()
        firsts = first_divergence_steps(group["generated_token_ids"].tolist())
        pairs = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]]
        for (a, b), first in zip(pairs, firsts):
            last = horizon if first is None else first
            for store, source in ((pair_margins, margins), (pair_masses, masses)):
                both = np.vstack([_padded(source.get(a), horizon),
                                  _padded(source.get(b), horizon)])
                store.append(_nanmean(both, last))
    return np.asarray(pair_margins), np.asarray(pair_masses)


def _padded(values, horizon: int) -> np.ndarray:
    out = np.full(horizon, np.nan)
    if values is not None:
        values = np.asarray(values, float)[:horizon]
        out[:values.size] = values
    return out


def _nanmean(both: np.ndarray, last: int) -> np.ndarray:
    """Mean of the present values per step, NaN where neither has one or after `last`."""
    present = ~np.isnan(both)
    total = np.where(present, both, 0.0).sum(axis=0)
    count = present.sum(axis=0)
    mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    mean[last:] = np.nan
    return mean


def greedy_prediction(run: Run, condition: str, counts: pd.DataFrame):
    """GreedyFit of c against the pooled first-divergence counts; ValueError when no pair
    has a usable margin and mass."""
    horizon = counts.shape[1] - 1
    margins, masses = greedy_pair_samples(run, condition, horizon)
    return fit_greedy_c(margins, masses, counts.to_numpy(float).sum(axis=0))


def temperature_prediction(run: Run, condition: str) -> dict:
    """Observed and predicted first-divergence pmfs (last entry: never) from at-risk hazards."""
    collision = per_step_arrays(run, COLLISION_PROBE)
    traj = run.trajectories[run.trajectories["condition"] == condition]
    horizon = int(traj["n_steps"].max())
    at_risk, diverged, predicted = (np.zeros(horizon) for _ in range(3))
    for _, group in traj.groupby("prompt_id", sort=True):
        ids = group["id"].tolist()
        lengths = dict(zip(ids, group["n_steps"]))
        firsts = first_divergence_steps(group["generated_token_ids"].tolist())
        pairs = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]]
        for (a, b), first in zip(pairs, firsts):
            last = min(first if first is not None else horizon, lengths[a], lengths[b])
            hazard = 1 - np.sqrt(_padded(collision.get(a), horizon)[:last]
                                 * _padded(collision.get(b), horizon)[:last])
            at_risk[:last] += 1
            predicted[:last] += np.nan_to_num(hazard)
            if first is not None and first <= last:
                diverged[first - 1] += 1
    steps = at_risk > 0
    observed_hazard = np.divide(diverged, at_risk, out=np.zeros(horizon), where=steps)
    predicted_hazard = np.divide(predicted, at_risk, out=np.zeros(horizon), where=steps)
    observed = first_divergence_pmf(observed_hazard[steps])
    expected = first_divergence_pmf(predicted_hazard[steps])
    return {"observed": observed, "predicted": expected, "n_pairs": int(at_risk[0]),
            "tv": distribution_distance(observed, expected)}
