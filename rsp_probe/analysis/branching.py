"""branching.parquet from a run's trajectories: prefix trees per prompt and condition, with
the entropy and RSP attention mass at each branch point. No torch."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rsp_probe.analysis.attention import step_means
from rsp_probe.analysis.prefix_tree import branching_records
from rsp_probe.probes.names import ATTENTION_PROBE
from rsp_probe.runs import Run


def per_step_arrays(run: Run, probe: str) -> dict[str, np.ndarray]:
    """trajectory id -> values by step (averaged over layers and heads for attention)."""
    means = step_means(run, probe)
    return {trajectory: group.to_numpy() for trajectory, group in
            means.groupby(level="trajectory")}


def branching_frame(run: Run) -> pd.DataFrame:
    entropy = per_step_arrays(run, "entropy")
    attention = per_step_arrays(run, ATTENTION_PROBE)
    frames = []
    for (prompt_id, condition), group in run.trajectories.groupby(["prompt_id", "condition"]):
        ids = group["id"].tolist()
        missing = np.full(int(group["n_steps"].max()), np.nan)
        frames.append(branching_records(
            prompt_id, condition, group["generated_token_ids"].tolist(),
            answers=[a if isinstance(a, str) else None for a in group["answer"]],
            correct=group["correct"].fillna(False).astype(bool).tolist(),
            entropy=[entropy.get(i, missing) for i in ids],
            attention=[attention.get(i, missing) for i in ids]))
    return pd.concat(frames, ignore_index=True)
