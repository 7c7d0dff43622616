"""What each condition of a run was: its k and temperature, read from trajectories.jsonl.
The one place figures and summaries look this up. No torch."""

from __future__ import annotations

import pandas as pd

from rsp_probe.runs import Run


def condition_settings(run: Run) -> pd.DataFrame:
    """condition -> rsp_tokens, temperature, in the run's order."""
    traj = run.trajectories
    return traj.groupby("condition", sort=False)[["rsp_tokens", "temperature"]].first()


def condition_k(run: Run) -> pd.Series:
    """condition -> k (int), sorted by condition name."""
    return condition_settings(run)["rsp_tokens"].astype(int).sort_index()
