"""Dose-response from `rsp-probe dose` runs (dose.parquet, score_shift.parquet).

Against k at sigma scale 1 (log2 axis): teacher-forced KL at step 1 against the baseline,
accuracy with its 95% bootstrap CI over prompts, and the share of trajectories identical to
their baseline twin; the dotted line is the baseline k = 0. Fourth panel: the score-shift
dose, KL(p_beta || p_blocked) against the RSP mass m on log-log axes, one line per (prompt,
step) cell, with the theory's slope 2 drawn through the cells' median point. The sigma-scale
rows stay in the CSV (the claims state them as differences with CIs).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rsp_probe.analysis.tables import DOSE_FILE, SCORE_SHIFT_FILE
from rsp_probe.errors import UsageError
from rsp_probe.figures import style
from rsp_probe.runs import Run

NAME = "dose"
NEEDS = ("dose",)
MEASURES = {"kl_step1": "teacher-forced KL at step 1 (nats)", "accuracy": "accuracy (fraction)",
            "same_as_k0": "identical to the baseline (fraction)"}
COLUMNS = ["run", "panel", "series", "x", "y", "ci_low", "ci_high",
           "n_prompts"]


def data(runs: list[Run]) -> pd.DataFrame:
    frames = []
    for run in runs:
        if not run.has(DOSE_FILE):
            raise UsageError(f"{run.path}: no {DOSE_FILE}")
        table = run.table(DOSE_FILE)
        by_k = table[(table["sigma_scale"] == 1.0)]
        by_sigma = table[table["k"] == int(run.config["dose_k"])]
        for axis, rows, x in (("k", by_k, by_k["k"]), ("sigma", by_sigma,
                                                       by_sigma["sigma_scale"])):
            for measure in MEASURES:
                frames.append(pd.DataFrame({
                    "run": run.id, "panel": f"{measure} vs {axis}", "series": measure,
                    "x": x, "y": rows[measure],
                    "ci_low": rows.get(f"{measure}_lo", rows[measure]),
                    "ci_high": rows.get(f"{measure}_hi", rows[measure])}))
        shifts = run.table(SCORE_SHIFT_FILE)
        frames.append(pd.DataFrame({
            "run": run.id, "panel": "score shift",
            "series": shifts["condition"] + "/" + shifts["prompt_id"].astype(str),
            "x": shifts["m"], "y": shifts["kl"], "ci_low": np.nan, "ci_high": np.nan}))
    return _with_prompts(pd.concat(frames, ignore_index=True), runs)[COLUMNS]


def make(df: pd.DataFrame):
    """The k dose (three measures) and the score-shift dose; the sigma dose is in the CSV and,
    as differences with CIs, in the claims (its effect is too small to draw on these axes)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(8.4, 6.6), squeeze=False, layout="tight")
    for ax, measure in zip(axes.flat, MEASURES):
        rows = df[df["panel"] == f"{measure} vs k"]
        baseline = rows[rows["x"] == 0]
        curve = rows[rows["x"] > 0]
        style.with_band(ax, curve, "tab:blue", "RSP, k vectors", gid=f"{measure}:k",
                        marker="o")
        if len(baseline) and np.isfinite(float(baseline["y"].iloc[0])):
            ax.axhline(float(baseline["y"].iloc[0]), color="grey", linestyle=":",
                       label="baseline (k = 0)")
        ax.set_xscale("log", base=2)
        ks = sorted(curve["x"].unique())
        ax.set_xticks(ks, [f"{k:g}" for k in ks])
        ax.minorticks_off()
        ax.set_xlabel("k, RSP vectors (log2 scale)")
        ax.set_ylabel(MEASURES[measure])
        if "fraction" in MEASURES[measure]:
            ax.set_ylim(-0.02, 1.02)
        ax.legend(frameon=False, fontsize=6, loc="best")
    _score_shift(axes[1, 1], df[df["panel"] == "score shift"])
    return fig


def caption(df: pd.DataFrame) -> str:
    cells = df.loc[df["panel"] == "score shift", "series"].nunique()
    return (f"Dose-response against k at sigma scale 1 (dose run, {style.prompt_count(df)}): "
            "the teacher-forced KL from "
            "the baseline distribution at step 1, accuracy with its 95% prompt-bootstrap CI "
            "band, and the share of trajectories identical to their baseline twin; dotted: "
            "the baseline (k = 0). Bottom right: the score-shift dose, KL(p_β ‖ p_blocked) "
            f"against the RSP mass m on log-log axes, one thin line per (prompt, step) cell "
            f"({cells} cells), with the first-order theory's slope 2 (dashed) through the "
            "cells' median point. The sigma-scale doses change these measures by less than "
            "their CIs; they are stated as differences with CIs in docs/results.md "
            "(Dose-response) and kept in dose.csv.")


def _score_shift(ax, rows: pd.DataFrame) -> None:
    rows = rows[(rows["y"] > 1e-10) & (rows["x"] > 0)]
    for series, cell in rows.groupby("series"):
        ax.plot(cell["x"], cell["y"], color="tab:blue", alpha=0.35, linewidth=0.8,
                marker="o", markersize=2, gid=f"shift:{series}")
    if len(rows):
        x0, y0 = float(np.median(rows["x"])), float(np.median(rows["y"]))
        xs = np.geomspace(rows["x"].min(), rows["x"].max(), 20)
        style.theory_line(ax, xs, y0 * (xs / x0) ** 2, "theory: KL ~ m^2 (slope 2)",
                          gid="shift:theory")
        style.legend_below(ax, ncol=1, fontsize=6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    low, high = ax.get_xlim()
    ax.set_xlim(low, min(high, 1.0))
    ax.set_xlabel("RSP mass m at the shifted step (fraction)")
    ax.set_ylabel("KL(p_β ‖ p_blocked) (nats)")
    ax.set_title("score-shift dose")


def _with_prompts(frame: pd.DataFrame, runs: list[Run]) -> pd.DataFrame:
    """Each row's run's prompt count (for the caption: every CI resamples these)."""
    counts = {run.id: int(run.trajectories["prompt_id"].nunique()) for run in runs}
    return frame.assign(n_prompts=frame["run"].map(counts))
