"""Statistics of train-rl runs (no torch): held-out probes by arm, seed, update, condition.

Every checkpoint of every run is probed on the same held-out problems (the first --n-prompts
of the test split), and runs of the same seed share their rollout problems and evaluation
seeds across arms, so values pair by (seed, prompt). Intervals resample both levels: seeds
(training runs) with replacement, then prompts with replacement (the same prompts in every
resampled seed) -- a hierarchical bootstrap, so the CI carries run-to-run variation as well
as problem sampling. With two seeds per arm the seed level has three distinct resamples:
the intervals are wide by construction, and say so."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rsp_probe.analysis.stats import N_BOOT, percentile_interval

EVAL_FILE = "train_rl_eval.parquet"
LOG_FILE = "train_rl_log.parquet"
ARM_LABELS = {"none": "no-RSP arm", "rsp": "RSP arm"}  # trained without / with an RSP
CONDITION_LABELS = {"temp": "tested plainly", "rsp+temp": "tested with an RSP",
                    "greedy": "tested greedily"}


def eval_frame(runs) -> pd.DataFrame:
    """arm, seed, step, condition, prompt_id, metric, value over every train-rl run."""
    frames = []
    for run in runs:
        table = run.table(EVAL_FILE)
        frames.append(table.assign(arm=run.config["arm"], seed=int(run.config["seed"])))
    if not frames:
        raise ValueError("no train-rl runs")
    return pd.concat(frames, ignore_index=True)


def value_matrix(frame: pd.DataFrame, arm: str, step: int, condition: str,
                 metric: str) -> np.ndarray:
    """[seeds, prompts] of one arm, update, condition and metric (nan where missing)."""
    rows = frame[(frame["arm"] == arm) & (frame["step"] == step)
                 & (frame["condition"] == condition) & (frame["metric"] == metric)]
    return rows.pivot_table(index="seed", columns="prompt_id", values="value",
                            aggfunc="mean").sort_index().to_numpy(dtype=float)


def hierarchical_mean(matrix: np.ndarray, n_boot: int = N_BOOT, seed: int = 0
                      ) -> tuple[float, float, float]:
    """Mean of [seeds, prompts] values and its 95% CI resampling seeds, then prompts."""
    matrix = np.asarray(matrix, dtype=float)
    if matrix.size == 0 or np.isnan(matrix).all():
        return (np.nan, np.nan, np.nan)
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, matrix.shape[0], size=(n_boot, matrix.shape[0]))
    prompts = rng.integers(0, matrix.shape[1], size=(n_boot, matrix.shape[1]))
    resampled = matrix[seeds[:, :, None], prompts[:, None, :]]  # [n_boot, seeds, prompts]
    means = np.nanmean(resampled.reshape(n_boot, -1), axis=1)
    low, high = percentile_interval(means[~np.isnan(means)])
    return float(np.nanmean(matrix)), float(low), float(high)


def curve(frame: pd.DataFrame, arm: str, condition: str, metric: str) -> pd.DataFrame:
    """step, y, ci_low, ci_high, n_seeds, n_prompts: one arm's metric along training."""
    rows = []
    for step in sorted(frame.loc[frame["arm"] == arm, "step"].unique()):
        matrix = value_matrix(frame, arm, step, condition, metric)
        if matrix.size == 0:
            continue
        mean, low, high = hierarchical_mean(matrix)
        rows.append({"step": int(step), "y": mean, "ci_low": low, "ci_high": high,
                     "n_seeds": matrix.shape[0], "n_prompts": matrix.shape[1]})
    return pd.DataFrame(rows)


def final_step(frame: pd.DataFrame) -> int:
    return int(frame["step"].max())


def arm_difference(frame: pd.DataFrame, condition: str, metric: str,
                   step: int | None = None) -> tuple[float, float, float, int, int]:
    """RSP arm minus no-RSP arm at `step` (default: the last), paired by seed and prompt:
    (mean, ci_low, ci_high, n_seeds, n_prompts)."""
    step = final_step(frame) if step is None else step
    rsp = value_matrix(frame, "rsp", step, condition, metric)
    none = value_matrix(frame, "none", step, condition, metric)
    if rsp.shape != none.shape or rsp.size == 0:
        raise ValueError(f"{metric} at update {step}: the arms have different seeds or prompts")
    return (*hierarchical_mean(rsp - none), *rsp.shape)


def change_along_training(frame: pd.DataFrame, arm: str, condition: str, metric: str,
                          relative: bool = False) -> tuple[float, float, float, int, int]:
    """Final minus first probed value of one arm (relative: divided by the first), paired by
    seed and prompt; the relative change's CI resamples the ratio of means."""
    first, last = int(frame["step"].min()), final_step(frame)
    before = value_matrix(frame, arm, first, condition, metric)
    after = value_matrix(frame, arm, last, condition, metric)
    if not relative:
        return (*hierarchical_mean(after - before), *after.shape)
    return (*_ratio_change(before, after), *after.shape)


def _ratio_change(before: np.ndarray, after: np.ndarray, n_boot: int = N_BOOT,
                  seed: int = 0) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, before.shape[0], size=(n_boot, before.shape[0]))
    prompts = rng.integers(0, before.shape[1], size=(n_boot, before.shape[1]))

    def ratio(matrix_a, matrix_b, s, p):
        return (np.nanmean(matrix_b[s[:, :, None], p[:, None, :]].reshape(len(s), -1), axis=1)
                / np.nanmean(matrix_a[s[:, :, None], p[:, None, :]].reshape(len(s), -1),
                             axis=1) - 1.0)

    boots = ratio(before, after, seeds, prompts)
    low, high = percentile_interval(boots[np.isfinite(boots)])
    return float(np.nanmean(after) / np.nanmean(before) - 1.0), float(low), float(high)
