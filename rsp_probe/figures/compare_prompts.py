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
COLUMNS = ["run", "panel", "series", "x", "y", "ci_low", "ci_high"]
ACCURACY = {"accuracy": "sampled", "greedy_accuracy": "greedy"}
CURVES = {ATTENTION_PROBE: "attention mass on the slots", "entropy": "entropy, nats"}
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
    return style.round_sig(pd.concat(frames, ignore_index=True)[COLUMNS])


def make(df: pd.DataFrame):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(15.0, 4.2), squeeze=False, layout="tight")
    _points(axes[0, 0], df[df["panel"] == "accuracy"], "accuracy", horizontal=False)
    controls = [a for a in dict.fromkeys(df.loc[df["panel"] == "accuracy", "x"])
                if a not in MAIN_ARMS]
    colors = {**dict(zip(controls, CONTROL_COLORS * 2)), **MAIN_ARMS}
    for ax, (probe, label) in zip(axes[0, 1:3], CURVES.items()):
        rows = df[df["panel"] == probe]
        for arm, curve in rows.groupby("series", sort=False):
            curve = curve.assign(x=curve["x"].astype(float))
            style.with_band(ax, curve, colors.get(arm), arm, gid=f"{probe}:{arm}",
                            band=arm in MAIN_ARMS)
        style.log_axis(ax)
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        if not len(rows):
            style.note(ax, "no sampled steps")
    style.legend_below(axes[0, 2], ncol=3, fontsize=6)  # entropy: every arm has a curve
    _points(axes[0, 3], df[df["panel"] == "paired"], "difference a - b", horizontal=True)
    axes[0, 3].axvline(0.0, color="grey", linestyle=":")
    return fig


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
        ax.set_xlabel(label)
    else:
        ax.set_xticks(list(ticks), categories, rotation=60, ha="right", fontsize=6)
        ax.set_ylabel(label)
    ax.legend(loc="best", fontsize=6)
