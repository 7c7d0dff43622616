"""Bootstrap statistics over prompts: the unit of replication is the problem, not the
trajectory (samples of one prompt are correlated). No torch."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from rsp_probe.analysis.windows import WINDOWS, in_window

# the per-step columns of `show --full` (the full view); headline numbers are the fixed
# windows of analysis.windows (summarise_windows), never these steps
REPORT_STEPS = (1, 2, 3, 5, 10, 20, 50)
N_BOOT = 2000


def bootstrap_indices(n_units: int, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """The one bootstrap of the package: n_boot resamples of n_units units (prompts,
    problems) with replacement, [n_boot, n_units]; the same seed gives the same resamples."""
    if n_units == 0:
        raise ValueError("bootstrap needs at least one problem")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1; got {n_boot}")
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_units, size=(n_boot, n_units))


def percentile_interval(stats: np.ndarray, ci: float = 0.95, axis=None):
    """(low, high) percentile interval of bootstrap statistics (along `axis`)."""
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must lie in (0, 1); got {ci}")
    alpha = (1.0 - ci) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha], axis=axis)
    return low, high


def bootstrap_mean(values, n_boot: int = N_BOOT, seed: int = 0,
                   ci: float = 0.95) -> tuple[float, float, float]:
    """Mean of per-prompt values with a percentile bootstrap CI (nan when empty)."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return (np.nan, np.nan, np.nan)
    means = values[bootstrap_indices(values.size, n_boot, seed)].mean(axis=1)
    low, high = percentile_interval(means, ci)
    return float(values.mean()), float(low), float(high)


def per_prompt_mean(frame: pd.DataFrame, by: list[str], value: str = "value") -> pd.DataFrame:
    """Average trajectories within each prompt first, so prompts weigh equally."""
    return frame.groupby([*by, "prompt_id"], observed=True)[value].mean().reset_index()


def summarise_by_step(frame: pd.DataFrame, steps=REPORT_STEPS, by=("condition", "probe"),
                      seed: int = 0) -> pd.DataFrame:
    """Mean and 95% CI (resampling prompts) at each report step that exists.

    `frame` needs columns prompt_id, step, value and those in `by`.
    """
    frame = frame[frame["step"].isin(steps)]
    prompt_means = per_prompt_mean(frame, [*by, "step"])
    rows = []
    for keys, group in prompt_means.groupby([*by, "step"], observed=True):
        mean, lo, hi = bootstrap_mean(group["value"].to_numpy(), seed=seed)
        rows.append({**dict(zip([*by, "step"], keys)), "mean": mean, "ci_low": lo,
                     "ci_high": hi, "n_prompts": len(group)})
    return pd.DataFrame(rows)


def window_means(frame: pd.DataFrame, by=("condition", "probe")) -> pd.DataFrame:
    """Per (by, prompt, window): the mean over the prompt's trajectories of each trajectory's
    mean over its steps in the window. A trajectory's length for the late window is its last
    step in `frame` (columns trajectory, prompt_id, step, value and `by`)."""
    frame = frame.assign(length=frame.groupby("trajectory")["step"].transform("max"))
    parts = []
    for window in WINDOWS:
        inside = frame[in_window(window, frame["step"].to_numpy(), frame["length"].to_numpy())]
        per_trajectory = inside.groupby([*by, "prompt_id", "trajectory"], observed=True)[
            "value"].mean().reset_index()
        parts.append(per_prompt_mean(per_trajectory, list(by)).assign(window=window))
    return pd.concat(parts, ignore_index=True)


def summarise_windows(frame: pd.DataFrame, by=("condition", "probe"), seed: int = 0,
                      n_boot: int = N_BOOT) -> pd.DataFrame:
    """Mean and 95% CI (resampling prompts) of each fixed window (analysis.windows: early,
    middle, late), per `by`; columns *by, window, mean, ci_low, ci_high, n_prompts."""
    rows = []
    for keys, group in window_means(frame, by).groupby([*by, "window"], observed=True):
        mean, lo, hi = bootstrap_mean(group["value"].to_numpy(), n_boot=n_boot, seed=seed)
        rows.append({**dict(zip([*by, "window"], keys)), "mean": mean, "ci_low": lo,
                     "ci_high": hi, "n_prompts": len(group)})
    out = pd.DataFrame(rows)
    if not out.empty:
        out["window"] = pd.Categorical(out["window"], categories=list(WINDOWS), ordered=True)
        out = out.sort_values([*by, "window"]).reset_index(drop=True)
    return out


def format_ci(mean: float, lo: float, hi: float, digits: int = 3) -> str:
    if np.isnan(mean):
        return "-"
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def wide_table(summary: pd.DataFrame, row: str = "condition", column: str = "step",
               digits: int = 3) -> str:
    """Render a tidy summary as a fixed-width text table with CI cells."""
    if summary.empty:
        return "(no data)"
    cells = summary.assign(cell=[format_ci(m, lo, hi, digits) for m, lo, hi in
                                 summary[["mean", "ci_low", "ci_high"]].to_numpy()])
    table = cells.pivot(index=row, columns=column, values="cell").fillna("-")
    table = table.reindex(index=sorted(table.index, key=natural_key),
                          columns=sorted(table.columns, key=natural_key))
    table.columns = [f"{column} {c}" for c in table.columns]
    return table.to_string()


def natural_key(value) -> tuple:
    """Sort key that orders numbers inside names as numbers: k0, k4, k16 (not k0, k16, k4);
    plain numbers (steps, layers, k) by value, before names."""
    if isinstance(value, (int, float, np.integer, np.floating)):
        return ((0, float(value)),)
    return tuple((1, int(part)) if part.isdigit() else (2, part)
                 for part in re.split(r"(\d+)", str(value)) if part)


def natural_groups(frame: pd.DataFrame | pd.Series, column: str) -> list:
    """frame.groupby(column) (a column, or an index level of a Series) as (value, rows)
    pairs in natural_key order."""
    groups = frame.groupby(level=column) if isinstance(frame, pd.Series) else frame.groupby(column)
    return sorted(groups, key=lambda group: natural_key(group[0]))
