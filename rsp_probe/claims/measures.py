"""Per-prompt statistics the claims are built from: a probe averaged over a fixed step window
(analysis/windows.py) per prompt, means and paired differences with the one prompt bootstrap
(analysis/stats.py), and the words a CI licenses. No torch."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rsp_probe.analysis.attention import step_means
from rsp_probe.analysis.conditions import condition_k
from rsp_probe.analysis.stats import bootstrap_mean
from rsp_probe.analysis.windows import EARLY, LATE_LAST, MIDDLE, WINDOWS, in_window
from rsp_probe.runs import Run

WINDOW_TEXT = {"early": f"Early (steps {EARLY[0]}-{EARLY[1]})",
               "middle": f"Middle (steps {MIDDLE[0]}-{MIDDLE[1]})",
               "late": f"Late (last {LATE_LAST} steps)"}


WINDOW_MEAN = ("each trajectory's mean over the window's steps, averaged within each prompt; "
               "mean over prompts with a prompt-bootstrap 95% CI")


def window_frame(run: Run, probe: str, reference: str | None = None) -> pd.DataFrame:
    """trajectory, step, value (the probe averaged over layers and heads), condition,
    prompt_id, n_steps: the input every window statistic reads.

    A teacher-forced probe that runs along another condition's tokens (a KL from the full
    RSP or from k=0) has as many steps as that reference trajectory, not as its own: with
    `reference`, n_steps is the reference twin's (same prompt and sample), so the late
    window ends where the probe's steps end."""
    means = step_means(run, probe).rename("value").reset_index()
    meta = run.trajectories[["id", "condition", "prompt_id", "sample", "n_steps"]].copy()
    if reference is not None:
        twins = meta[meta["condition"] == reference].set_index(["prompt_id", "sample"])
        if twins.empty:
            raise ValueError(f"{run.path}: no trajectories of the reference {reference!r}")
        keys = pd.MultiIndex.from_frame(meta[["prompt_id", "sample"]])
        meta["n_steps"] = twins["n_steps"].reindex(keys).to_numpy()
    meta = meta.drop(columns="sample").rename(columns={"id": "trajectory"})
    return means.merge(meta, on="trajectory")


def window_by_prompt(frame: pd.DataFrame, window: str) -> pd.Series:
    """(condition, prompt_id) -> mean over the prompt's trajectories of each trajectory's
    mean over the window's steps (so prompts weigh equally, and trajectories within them)."""
    inside = frame[in_window(window, frame["step"].to_numpy(), frame["n_steps"].to_numpy())]
    per_trajectory = inside.groupby(["condition", "prompt_id", "trajectory"])["value"].mean()
    return per_trajectory.groupby(level=["condition", "prompt_id"]).mean()


def estimate(values) -> dict:
    """value, ci_low, ci_high, n of a mean over prompts (nan-free values)."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    mean, low, high = bootstrap_mean(values)
    return {"value": mean, "ci_low": low, "ci_high": high, "n": int(values.size)}


def paired(per_prompt: pd.Series, a, b) -> dict:
    """Mean over the prompts both conditions have of (a - b), with its bootstrap CI."""
    left, right = per_prompt.xs(a, level=0), per_prompt.xs(b, level=0)
    both = left.index.intersection(right.index)
    return estimate((left[both] - right[both]).to_numpy())


def verdict(ci_low, ci_high, up: str = "higher", down: str = "lower",
            neither: str = "CI includes 0") -> str:
    """What the interval says about the sign: `up` above 0, `down` below, else `neither`."""
    if ci_low is not None and ci_low > 0:
        return up
    if ci_high is not None and ci_high < 0:
        return down
    return neither


def rsp_conditions(run: Run) -> list[tuple[str, int]]:
    """(condition, k) of every condition with an RSP, by increasing k."""
    ks = condition_k(run)
    return sorted(((c, int(k)) for c, k in ks.items() if k > 0), key=lambda item: item[1])


def baseline_condition(run: Run) -> str:
    """The condition without an RSP (k = 0) a dose is compared with."""
    ks = condition_k(run)
    zero = [c for c, k in ks.items() if k == 0]
    if len(zero) != 1:
        raise ValueError(f"{run.path}: expected one k=0 condition, found {zero}")
    return zero[0]


__all__ = ["WINDOWS", "WINDOW_MEAN", "WINDOW_TEXT", "baseline_condition", "estimate", "paired",
           "rsp_conditions", "verdict", "window_by_prompt", "window_frame"]
