"""A trained soft prompt against random ones, from `rsp-probe compare-prompts` runs
(rsp_probe.analysis.compare_prompts).

Left: sampled and greedy accuracy per arm with 95% bootstrap CIs over prompts. Middle two:
the attention mass on the prompt's slots and the next-token entropy against the step (log
axis), one line per arm, CI bands over prompts. Right: paired differences a - b on the same
prompts (pass@1 and greedy accuracy) with their 95% CIs; zero is the dotted line.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rsp_probe.analysis.compare_prompts import COMPARE_FILE, CURVES_FILE, PAIRED_FILE
from rsp_probe.errors import UsageError
from rsp_probe.figures import style
from rsp_probe.probes.names import ATTENTION_PROBE
from rsp_probe.runs import Run

NAME = "compare_prompts"
NEEDS = ("compare-prompts",)
COLUMNS = ["run", "panel", "series", "x", "y", "ci_low", "ci_high",
           "n_prompts"]
ACCURACY = {"accuracy": "sampled", "greedy_accuracy": "greedy"}
CURVES = {ATTENTION_PROBE: "attention mass on the slots (fraction)",
          "entropy": "next-token entropy (nats)"}
PAIRED = ("pass@1", "greedy_accuracy")
# the arms the comparison is about get their own colours and CI bands; controls are thin
MAIN_ARMS = {"none": "black", "rsp": "tab:blue", "trained": "tab:red",
             "trained-fit": "tab:orange", "trained+noise": "tab:purple"}
CONTROL_COLORS = ("tab:green", "tab:olive", "tab:cyan", "tab:brown", "tab:pink", "tab:gray")


def data(runs: list[Run]) -> pd.DataFrame:
    frames = []
    for run in runs:
        if not run.has(COMPARE_FILE):
            raise UsageError(f"{run.path}: no {COMPARE_FILE}")
        table = run.table(COMPARE_FILE)
        for measure, label in ACCURACY.items():
            frames.append(pd.DataFrame({
                "run": run.id, "panel": "accuracy", "series": label, "x": table["arm"],
                "y": table[measure], "ci_low": table[f"{measure}_lo"],
                "ci_high": table[f"{measure}_hi"]}))
        curves = run.table(CURVES_FILE)
        if len(curves) and "n_prompts" in curves:  # steps while half of the prompts run
            curves = style.running_steps(curves, keys=("arm", "probe"))
        if len(curves):
            frames.append(pd.DataFrame({
                "run": run.id, "panel": curves["probe"], "series": curves["arm"],
                "x": curves["step"], "y": curves["mean"], "ci_low": curves["ci_low"],
                "ci_high": curves["ci_high"]}))
        paired = run.table(PAIRED_FILE)
        paired = paired[paired["measure"].isin(PAIRED)]
        frames.append(pd.DataFrame({
            "run": run.id, "panel": "paired", "series": paired["measure"],
            "x": paired["a"] + " - " + paired["b"], "y": paired["diff"],
            "ci_low": paired["lo"], "ci_high": paired["hi"]}))
    return style.round_sig(_with_prompts(pd.concat(frames, ignore_index=True), runs)[COLUMNS])


def make(df: pd.DataFrame):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(9.0, 7.6), squeeze=False, layout="tight")
    _points(axes[0, 0], df[df["panel"] == "accuracy"], "accuracy (fraction)", horizontal=True)
    axes[0, 0].set_xlim(-0.02, 1.02)
    axes[0, 0].set_title("accuracy per arm")
    for ax, (probe, label) in zip((axes[0, 1], axes[1, 0]), CURVES.items()):
        _curves(ax, df[df["panel"] == probe], probe, legend=probe != ATTENTION_PROBE)
        ax.set_ylabel(label)
    _points(axes[1, 1], df[df["panel"] == "paired"], "difference a − b", horizontal=True)
    axes[1, 1].axvline(0.0, color="grey", linestyle=":")
    axes[1, 1].set_title("paired differences")
    return fig


def _curves(ax, rows: pd.DataFrame, probe: str, legend: bool) -> None:
    """The arms the comparison is about in colour with CI bands; every control one thin grey
    line under a single legend entry."""
    controls_named = False
    for arm, curve in rows.groupby("series", sort=False):
        curve = curve.assign(x=curve["x"].astype(float))
        main = arm in MAIN_ARMS
        label = arm if main else (None if controls_named else "controls")
        controls_named = controls_named or not main
        line = style.with_band(ax, curve, MAIN_ARMS.get(arm, "0.65"), label,
                               gid=f"{probe}:{arm}", band=main)
        line.set_zorder(3 if main else 2)
    style.log_axis(ax)
    ax.set_xlabel("decoding step t (log scale)")
    ax.set_title("attention on the slots" if probe == ATTENTION_PROBE else "next-token entropy")
    if legend:
        ax.legend(frameon=False, fontsize=6, ncol=2, loc="upper right")


def caption(df: pd.DataFrame) -> str:
    arms = list(dict.fromkeys(df.loc[df["panel"] == "accuracy", "x"]))
    controls = [a for a in arms if a not in MAIN_ARMS]
    return ("A trained soft prompt against random ones and the controls (compare-prompts "
            f"run, {style.prompt_count(df)}; arms: {', '.join(arms)}). Top left: sampled "
            "and greedy accuracy per arm "
            "with 95% prompt-bootstrap CIs. Top right and bottom left: the attention mass on "
            "the prompt's slots (mean over layers and heads) and the next-token entropy by "
            "step (while at least half of the prompts still run), the compared arms in colour "
            "with CI bands, the controls "
            f"({', '.join(controls)}) as thin grey lines. Bottom right: paired differences "
            "a − b on the same prompts and seeds (pass@1 and greedy accuracy) with their 95% "
            "CIs; dotted: no difference.")


def _points(ax, rows: pd.DataFrame, label: str, horizontal: bool) -> None:
    """One point with its CI per (x category, series), series side by side."""
    categories = list(dict.fromkeys(rows["x"]))
    series = list(dict.fromkeys(rows["series"]))
    offsets = np.linspace(-0.15, 0.15, max(len(series), 1))
    for offset, name, color in zip(offsets, series, style.palette(len(series))):
        part = rows[rows["series"] == name]
        where = np.array([categories.index(x) for x in part["x"]]) + offset
        error = np.vstack([part["y"] - part["ci_low"], part["ci_high"] - part["y"]])
        if horizontal:
            ax.errorbar(part["y"], where, xerr=error, fmt="o", color=color, label=name,
                        markersize=3, gid=f"{label}:{name}")
        else:
            ax.errorbar(where, part["y"], yerr=error, fmt="o", color=color, label=name,
                        markersize=3, gid=f"{label}:{name}")
    ticks = range(len(categories))
    if horizontal:
        ax.set_yticks(list(ticks), categories, fontsize=6)
        ax.invert_yaxis()
        ax.set_xlabel(label)
    else:
        ax.set_xticks(list(ticks), categories, rotation=60, ha="right", fontsize=6)
        ax.set_ylabel(label)
    ax.legend(loc="lower right", fontsize=6, frameon=True, framealpha=0.9, facecolor="white",
              edgecolor="0.8")


def _with_prompts(frame: pd.DataFrame, runs: list[Run]) -> pd.DataFrame:
    """Each row's run's prompt count (for the caption: every CI resamples these)."""
    counts = {run.id: int(run.trajectories["prompt_id"].nunique()) for run in runs}
    return frame.assign(n_prompts=frame["run"].map(counts))
