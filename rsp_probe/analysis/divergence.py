"""First divergence of trajectory pairs, observed against the theory's hazards. No torch.

End of sequence is treated as everywhere in the package (analysis.prefix_tree): the EOS token
is a token, so two trajectories that emit it at the same step agree there and have ended
together; such a pair never diverges and stays in the risk set with hazard 0 up to the
horizon (it is not censored). One that ends while the other continues diverges at that step.
The observed first-divergence distribution is therefore exactly the raw histogram of
prefix_tree.first_divergence_steps (never = identical pairs).

Greedy decoding with RSP draws: h_t = P(margin_t < c m_t), c fitted by maximum likelihood
(rsp_probe.theory.fit_greedy_c) from the pairs' margins and RSP masses along their shared
prefix. Temperature sampling: two trajectories sharing a prefix split at step t with
probability 1 - sum_v p_t(v) q_t(v). `hazard="exact"` reads that sum per pair and step from
PAIR_OVERLAP_FILE (teacher-forced by the branching experiment); `hazard="bound"` uses
1 - sqrt(C_a C_b) from the collision probes, which is only a lower bound on the hazard
(Cauchy-Schwarz) and is exact without an RSP. Predicted hazards are averaged over the pairs
still together at each step, then turned into a first-divergence distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rsp_probe.analysis.branching import per_step_arrays
from rsp_probe.analysis.prefix_tree import NEVER, first_divergence_steps
from rsp_probe.analysis.tables import PAIR_OVERLAP_FILE
from rsp_probe.probes.names import ATTENTION_PROBE, COLLISION_PROBE
from rsp_probe.runs import Run
from rsp_probe.theory import (
    DivergencePMF,
    distribution_distance,
    first_divergence_pmf,
    fit_greedy_c,
)

HAZARDS = ("exact", "bound")


def divergence_counts(rows: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """[prompt, horizon + 1] pair counts by first-divergence step; last column = never."""
    steps = rows["step"].where(rows["step"] != NEVER, horizon + 1)
    table = pd.crosstab(rows["prompt_id"], steps, values=rows["count"], aggfunc="sum")
    return table.reindex(columns=range(1, horizon + 2), fill_value=0).fillna(0)


@dataclass(frozen=True)
class Pair:
    """Two trajectories of one prompt and condition. `first`: first-divergence step (None:
    identical, ended together); `together`: the last step at which both have a distribution
    on the shared prefix (first if they diverge, else their common length)."""

    prompt_id: str
    a: str
    b: str
    first: int | None
    together: int


def trajectory_pairs(traj: pd.DataFrame) -> list[Pair]:
    """Every pair i < j of each prompt's trajectories (rows of one condition)."""
    out = []
    for prompt_id, group in traj.groupby("prompt_id", sort=True):
        ids, lengths = group["id"].tolist(), group["n_steps"].tolist()
        firsts = iter(first_divergence_steps(group["generated_token_ids"].tolist()))
        for i, a in enumerate(ids):
            for j in range(i + 1, len(ids)):
                first = next(firsts)
                shorter = min(lengths[i], lengths[j])
                together = shorter if first is None else min(first, shorter)
                out.append(Pair(str(prompt_id), a, ids[j], first, together))
    return out


def _padded(values, horizon: int) -> np.ndarray:
    out = np.full(horizon, np.nan)
    if values is not None:
        values = np.asarray(values, float)[:horizon]
        out[:values.size] = values
    return out


def _nanmean(both: np.ndarray) -> np.ndarray:
    """Mean of the present values per step, NaN where neither has one."""
    present = ~np.isnan(both)
    total = np.where(present, both, 0.0).sum(axis=0)
    count = present.sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def greedy_pair_samples(run: Run, condition: str, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Per pair: mean margin and mass of its two trajectories along the shared prefix; NaN
    after a divergence, and after a shared end margin +inf with mass 0 (still at risk,
    hazard 0: a shared EOS is agreement, not censoring)."""
    margins, masses = per_step_arrays(run, "margin"), per_step_arrays(run, ATTENTION_PROBE)
    traj = run.trajectories[run.trajectories["condition"] == condition]
    pair_margins, pair_masses = [], []
    for pair in trajectory_pairs(traj):
        for store, source, after_end in ((pair_margins, margins, np.inf),
                                         (pair_masses, masses, 0.0)):
            both = np.vstack([_padded(source.get(pair.a), horizon),
                              _padded(source.get(pair.b), horizon)])
            mean = _nanmean(both)
            mean[pair.together:] = after_end if pair.first is None else np.nan
            store.append(mean)
    return np.asarray(pair_margins), np.asarray(pair_masses)


def greedy_prediction(run: Run, condition: str, counts: pd.DataFrame):
    """GreedyFit of c against the pooled first-divergence counts; ValueError when no pair
    has a usable margin and mass."""
    horizon = counts.shape[1] - 1
    margins, masses = greedy_pair_samples(run, condition, horizon)
    return fit_greedy_c(margins, masses, counts.to_numpy(float).sum(axis=0))


def has_pair_overlaps(run: Run) -> bool:
    return run.has(PAIR_OVERLAP_FILE)


def _overlap_lookup(run: Run, condition: str) -> dict[tuple[str, str], np.ndarray]:
    table = run.table(PAIR_OVERLAP_FILE)
    table = table[table["condition"] == condition].sort_values("step")
    return {(a, b): group.set_index("step")["overlap"]
            for (a, b), group in table.groupby(["a", "b"], sort=False)}


def pair_hazards(run: Run, condition: str, pairs: list[Pair], horizon: int,
                 hazard: str = "exact") -> np.ndarray:
    """[pairs, horizon] predicted hazard 1 - sum_v p_a p_b at each step the pair is together,
    0 after a shared end, NaN after a divergence."""
    if hazard not in HAZARDS:
        raise ValueError(f"hazard must be one of {', '.join(HAZARDS)}; got {hazard!r}")
    out = np.full((len(pairs), horizon), np.nan)
    steps = np.arange(1, horizon + 1)
    if hazard == "exact":
        overlaps = _overlap_lookup(run, condition)
    else:
        collision = per_step_arrays(run, COLLISION_PROBE)
    for row, pair in enumerate(pairs):
        if hazard == "exact":
            series = overlaps.get((pair.a, pair.b))
            overlap = np.full(horizon, np.nan) if series is None else \
                series.reindex(steps).to_numpy(float)
        else:
            overlap = np.sqrt(_padded(collision.get(pair.a), horizon)
                              * _padded(collision.get(pair.b), horizon))
        out[row, :pair.together] = 1.0 - overlap[:pair.together]
        if pair.first is None:
            out[row, pair.together:] = 0.0
    return out


def temperature_prediction(run: Run, condition: str, hazard: str | None = None) -> dict:
    """Observed (the raw histogram over pairs) and predicted first-divergence pmfs (last entry:
    never) for one condition; `hazard` defaults to "exact" when the run has pair overlaps."""
    hazard = hazard or ("exact" if has_pair_overlaps(run) else "bound")
    traj = run.trajectories[run.trajectories["condition"] == condition]
    horizon = int(traj["n_steps"].max())
    pairs = trajectory_pairs(traj)
    hazards = pair_hazards(run, condition, pairs, horizon, hazard)
    if np.isnan(hazards[:, 0]).any():
        raise ValueError(f"{condition}: a pair has no {hazard} hazard at step 1")
    return {**first_divergence_prediction(pairs, hazards, horizon), "hazard": hazard}


def first_divergence_prediction(pairs: list[Pair], hazards: np.ndarray, horizon: int) -> dict:
    """Observed pmf: the raw histogram of the pairs' first divergences (never = identical,
    a shared end included). Predicted pmf: from the hazards [pairs, horizon] (NaN after a
    pair's divergence, 0 after its shared end) averaged over the pairs at risk per step."""
    predicted_hazard = _nanmean(hazards)  # over the pairs at risk at each step
    counts = np.zeros(horizon + 1)
    for pair in pairs:
        counts[horizon if pair.first is None else min(pair.first, horizon + 1) - 1] += 1
    observed = DivergencePMF.from_counts(counts)
    predicted = first_divergence_pmf(np.nan_to_num(predicted_hazard, nan=0.0))
    return {"observed": observed, "predicted": predicted, "n_pairs": len(pairs),
            "tv": distribution_distance(observed, predicted)}
