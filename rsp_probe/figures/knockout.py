"""Knockout measures against the cut step s and against the blocked layer, from the
knockout.parquet of `rsp-probe knockout` runs (rsp_probe.analysis.knockout).

This figure: each measure against the first blocked step s (log2 axis; "never" drawn at the
right, at 2 x the largest s); knockout_layers.py draws the same measures against the single
layer knocked out from step 1. Reference lines: the full-RSP run and the baseline on the same
prompts and seeds, and beside the cuts the sampled direct-only and indirect-only paths.
Accuracy has its 95% bootstrap CI over prompts as a band. The distinct trajectories per
prompt are in the CSV, not drawn (one number per run at these sizes).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rsp_probe.analysis.tables import KNOCKOUT_FILE
from rsp_probe.errors import UsageError
from rsp_probe.figures import style
from rsp_probe.runs import Run

NAME = "knockout"
NEEDS = ("knockout",)
MEASURES = {"accuracy": "accuracy (fraction)",
            "same_as_full": "identical to the full-RSP run (fraction)",
            "distinct_per_prompt": "distinct trajectories per prompt",
            "kl_mean": "KL(full ‖ knocked) (nats)",
            "entropy_mean": "next-token entropy (nats)"}
DRAWN = ("accuracy", "same_as_full", "kl_mean", "entropy_mean")
KIND = "cut"
# horizontal lines: the references in every panel, the two sampled paths beside the cuts
_BOTH = (("full", "--"), ("baseline", ":"))
REFERENCES = {"cut": _BOTH + (("direct-only", "-."), ("indirect-only", (0, (5, 1, 1, 1, 1, 1)))),
              "layer": _BOTH}
REFERENCE_COLORS = {"full": "black", "baseline": "0.5", "direct-only": "#029e73",
                    "indirect-only": "#cc78bc"}
REFERENCE_LABELS = {"full": "full (no knockout)", "baseline": "baseline (no RSP)"}
COLUMNS = ["run", "kind", "condition", "x", "x_label", "measure", "y", "ci_low", "ci_high",
           "n_prompts"]


def data(runs: list[Run]) -> pd.DataFrame:
    frames = []
    for run in runs:
        if not run.has(KNOCKOUT_FILE):
            raise UsageError(f"{run.path}: no {KNOCKOUT_FILE}")
        table = run.table(KNOCKOUT_FILE)
        cuts = table["cut_after"].dropna()
        never_x = 2 * float(cuts.max()) if len(cuts) else 2.0
        x = np.where(table["kind"] == "layer", pd.to_numeric(table["layers"].str.split("+").str[0],
                                                            errors="coerce"),
                     table["cut_after"].fillna(never_x))
        x_label = [("never" if np.isnan(c) else f"{c:g}") if kind == "cut" else layers
                   for kind, c, layers in zip(table["kind"], table["cut_after"], table["layers"])]
        for measure in MEASURES:
            if measure not in table:  # a run written before the measure existed
                table[measure] = np.nan
            low = table.get(f"{measure}_lo", table[measure])
            high = table.get(f"{measure}_hi", table[measure])
            frames.append(pd.DataFrame({"run": run.id, "kind": table["kind"],
                                        "condition": table["condition"], "x": x,
                                        "x_label": x_label,
                                        "measure": measure, "y": table[measure],
                                        "ci_low": low, "ci_high": high}))
    return _with_prompts(pd.concat(frames, ignore_index=True), runs)[COLUMNS]


def make(df: pd.DataFrame, kind: str = KIND):
    """The four drawn measures against the cut step (kind "cut") or the layer ("layer")."""
    import matplotlib.pyplot as plt

    # a run written before a measure existed has none of it: no empty panel for it
    drawn = [m for m in DRAWN if df.loc[df["measure"] == m, "y"].notna().any()]
    rows, cols = style.grid(len(drawn), max_cols=2)
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 3.2 * rows), squeeze=False,
                             layout="tight")
    for ax, measure in zip(axes.flat, drawn):
        _panel(ax, df[df["measure"] == measure], kind, measure, legend=ax is axes[0, 0])
    for ax in list(axes.flat)[len(drawn):]:
        ax.set_visible(False)
    return fig


def caption(df: pd.DataFrame, kind: str = KIND) -> str:
    against = ("the first blocked step s (the RSP keys masked from step s on; 'never' keeps "
               "them)" if kind == "cut" else "the one layer whose RSP keys are masked from "
               "step 1")
    paths = (" Beside the cuts, the sampled direct-only path (only the newest query reads "
             "the RSP) and indirect-only path (only earlier positions do)." if kind == "cut"
             else "")
    runs = ", ".join(dict.fromkeys(df["run"]))
    return (f"Knockout ({runs}, {style.prompt_count(df)}): accuracy (95% prompt-bootstrap "
            "CI band), the share of "
            "trajectories identical to the full-RSP run, the teacher-forced KL of the full-RSP "
            "distribution from the knocked one along the full run's tokens, and the next-token "
            f"entropy, against {against}. Horizontal lines: the full RSP (no knockout) and the "
            "baseline without an RSP, on the same prompts and seeds." + paths)


def _panel(ax, rows: pd.DataFrame, kind: str, measure: str, legend: bool) -> None:
    runs = list(dict.fromkeys(rows["run"]))
    for color, run in zip(style.palette(len(runs)), runs):
        mine = rows[rows["run"] == run]
        curve = mine[mine["kind"] == kind].sort_values("x")
        style.with_band(ax, curve, color, run if len(runs) > 1 else None,
                        gid=f"{kind}:{measure}:{run}", marker="o")
        for condition, line in REFERENCES[kind]:
            ref = mine[mine["condition"] == condition]["y"].dropna()
            if len(ref):
                shade = color if len(runs) > 1 else REFERENCE_COLORS[condition]
                ax.axhline(float(ref.iloc[0]), color=shade, linestyle=line, linewidth=1.0,
                           label=REFERENCE_LABELS.get(condition, f"{condition} (sampled)"))
    ticks = rows[rows["kind"] == kind].drop_duplicates("x").sort_values("x")
    if kind == "cut":
        ax.set_xscale("log", base=2)
        ax.set_xlabel("first blocked step s")
    else:
        ax.set_xlabel("layer knocked out from step 1")
    ax.set_xticks(ticks["x"], ticks["x_label"])
    ax.minorticks_off()
    ax.set_ylabel(MEASURES[measure])
    if "fraction" in MEASURES[measure]:
        ax.set_ylim(-0.02, 1.02)
    if legend:
        ax.legend(frameon=True, framealpha=0.9, facecolor="white", edgecolor="0.8",
                  fontsize=6, loc="best")


def _with_prompts(frame: pd.DataFrame, runs: list[Run]) -> pd.DataFrame:
    """Each row's run's prompt count (for the caption: every CI resamples these)."""
    counts = {run.id: int(run.trajectories["prompt_id"].nunique()) for run in runs}
    return frame.assign(n_prompts=frame["run"].map(counts))
