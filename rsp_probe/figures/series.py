"""Step series shared by several figures: a paired difference by step (an RSP condition minus
the run's k=0 condition, prompt by prompt) with its prompt-bootstrap CI, and the fixed
windows of analysis/windows.py as spans to shade. No torch."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rsp_probe.analysis.stats import bootstrap_mean, per_prompt_mean
from rsp_probe.analysis.windows import EARLY, LATE_LAST, MIDDLE

WINDOW_COLORS = {"early": "#fde0c5", "middle": "#e3ecf7", "late": "#e6e6e6"}


def paired_by_step(frame: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """condition, step, mean, ci_low, ci_high, n_prompts of (condition - baseline), prompt by
    prompt: each prompt's trajectories averaged first, then the difference on the prompts
    both conditions reach at that step (columns of `frame`: condition, prompt_id, step,
    value)."""
    means = per_prompt_mean(frame, ["condition", "step"])
    wide = means.pivot_table(index=["prompt_id", "step"], columns="condition", values="value")
    rows = []
    for condition in [c for c in wide.columns if c != baseline]:
        diff = (wide[condition] - wide[baseline]).dropna()
        for step, values in diff.groupby(level="step"):
            mean, low, high = bootstrap_mean(values.to_numpy())
            rows.append({"condition": condition, "step": int(step), "mean": mean,
                         "ci_low": low, "ci_high": high, "n_prompts": int(values.size)})
    return pd.DataFrame(rows, columns=["condition", "step", "mean", "ci_low", "ci_high",
                                       "n_prompts"])


def median_length(lengths) -> float:
    return float(np.median(np.asarray(lengths, dtype=float)))


def window_spans(length: float | None) -> dict[str, tuple[float, float]]:
    """Steps each window covers on a step axis: early and middle as fixed; late as the last
    LATE_LAST steps of a trajectory of the median length (each trajectory's own late window
    ends at its own length, so on a shared axis this is where a typical one lies)."""
    spans = {"early": (EARLY[0] - 0.5, EARLY[1] + 0.5),
             "middle": (MIDDLE[0] - 0.5, MIDDLE[1] + 0.5)}
    if length is not None and length - LATE_LAST + 0.5 > MIDDLE[1] + 0.5:
        spans["late"] = (length - LATE_LAST + 0.5, length + 0.5)
    return spans


def shade_windows(ax, length: float | None, label: bool = True) -> None:
    """The fixed windows as background spans, named at the top of the panel."""
    for name, (low, high) in window_spans(length).items():
        ax.axvspan(low, high, color=WINDOW_COLORS[name], zorder=0, linewidth=0)
        if label:
            ax.text((low * high) ** 0.5 if ax.get_xscale() == "log" else (low + high) / 2,
                    0.97, name, transform=ax.get_xaxis_transform(), ha="center", va="top",
                    fontsize=6, color="0.35")
