"""Knockout measures against the cut step s and against the blocked layer, from the
knockout.parquet of `rsp-probe knockout` runs (rsp_probe.analysis.knockout).

Top row: each measure against the first blocked step s (log2 axis; "never" drawn at the
right, at 2 x the largest s); bottom row: against the single layer knocked out from step 1.
Dashed lines: the full-RSP run and the baseline on the same prompts and seeds; in the top
row also the sampled direct-only and indirect-only paths (dash-dot). Accuracy has its 95%
bootstrap CI over prompts as a band.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rsp_probe.errors import UsageError
from rsp_probe.figures import style
from rsp_probe.runs import KNOCKOUT_FILE, Run

NAME = "knockout"
NEEDS = ("knockout",)
MEASURES = {"accuracy": "accuracy", "same_as_full": "share identical to full-RSP run",
            "distinct_per_prompt": "distinct trajectories per prompt",
            "kl_mean": "teacher-forced KL(full || knocked), nats",
            "entropy_mean": "next-token entropy, nats"}
# horizontal lines: the references in every panel, the two sampled paths beside the cuts
_BOTH = (("full", "--"), ("baseline", ":"))
REFERENCES = {"cut": _BOTH + (("direct-only", "-."), ("indirect-only", (0, (5, 1, 1, 1, 1, 1)))),
              "layer": _BOTH}
REFERENCE_LABELS = {"full": "full (no knockout)", "baseline": "baseline (no RSP)"}
COLUMNS = ["run", "kind", "condition", "x", "x_label", "measure", "y", "ci_low", "ci_high"]


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
    return pd.concat(frames, ignore_index=True)[COLUMNS]


def make(df: pd.DataFrame):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(MEASURES), figsize=(3.4 * len(MEASURES), 6.0),
                             squeeze=False, layout="tight")
    for column, measure in enumerate(MEASURES):
        rows = df[df["measure"] == measure]
        for row, kind in enumerate(("cut", "layer")):
            _panel(axes[row, column], rows, kind, measure)
    return fig


def _panel(ax, rows: pd.DataFrame, kind: str, measure: str) -> None:
    runs = list(dict.fromkeys(rows["run"]))
    for color, run in zip(style.palette(len(runs)), runs):
        mine = rows[rows["run"] == run]
        curve = mine[mine["kind"] == kind].sort_values("x")
        style.with_band(ax, curve, color, run if len(runs) > 1 else None,
                        gid=f"{kind}:{measure}:{run}", marker="o")
        for condition, line in REFERENCES[kind]:
            ref = mine[mine["condition"] == condition]["y"].dropna()
            if len(ref):
                ax.axhline(float(ref.iloc[0]), color=color, linestyle=line, linewidth=0.9,
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
    ax.set_title(f"{MEASURES[measure]} vs {'cut step' if kind == 'cut' else 'layer'}",
                 fontsize=8)
    style.legend_below(ax, ncol=1, fontsize=6)
