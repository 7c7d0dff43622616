"""Pass@N against N per condition, from the passk.parquet of `rsp-probe passk` runs.

The table holds the unbiased Pass@N estimate averaged over problems with a 95% bootstrap
CI resampling problems (rsp_probe.analysis.passk.passk_table); the figure draws it as is,
one line with a CI band per condition, N on a log2 axis.
"""

from __future__ import annotations

import pandas as pd

from rsp_probe.errors import UsageError
from rsp_probe.figures import style
from rsp_probe.runs import PASSK_FILE, Run

NAME = "passk"
NEEDS = ("passk",)
COLUMNS = ["run", "condition", "label", "x", "y", "ci_low", "ci_high", "n_prompts", "n"]


def data(runs: list[Run]) -> pd.DataFrame:
    """run, condition, label, x (N), y (Pass@N), ci_low, ci_high, n_prompts (problems),
    n (samples per problem)."""
    frames = []
    for run in runs:
        if not run.has(PASSK_FILE):
            raise UsageError(f"{run.path}: no {PASSK_FILE}")
        table = _in_run_order(run, run.table(PASSK_FILE))
        frames.append(pd.DataFrame({
            "run": run.id, "condition": table["condition"], "x": table["k"],
            "y": table["pass_at_k"], "ci_low": table["ci_low"], "ci_high": table["ci_high"],
            "n_prompts": table["n_problems"], "n": table["n"]}))
    out = pd.concat(frames, ignore_index=True)
    prefix = style.run_prefix(out)
    n = out.groupby(["run", "condition"])["n_prompts"].transform("max")
    out["label"] = [f"{prefix[r]}{c} (n={m} problems)" for r, c, m in
                    zip(out["run"], out["condition"], n)]
    return out[COLUMNS].reset_index(drop=True)


def _in_run_order(run: Run, table: pd.DataFrame) -> pd.DataFrame:
    """Conditions in the order the command was given them, then by N."""
    named = list(run.config.get("conditions") or [])
    order = {c: i for i, c in enumerate([*named, *sorted(set(table["condition"]) - set(named))])}
    ranked = table.assign(_rank=table["condition"].map(order))
    return ranked.sort_values(["_rank", "k"], kind="stable").drop(columns="_rank")


def make(df: pd.DataFrame):
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator

    fig, ax = plt.subplots(figsize=(5.0, 3.6), layout="tight")
    labels = list(dict.fromkeys(df["label"]))
    for color, label in zip(style.palette(len(labels)), labels):
        style.with_band(ax, df[df["label"] == label], color, label, gid=label, marker="o")
    ax.set_xscale("log", base=2)
    ns = sorted(df["x"].unique())
    ax.xaxis.set_major_locator(FixedLocator(ns))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(ns, [f"{n:g}" for n in ns])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("N, samples per problem (log2 scale)")
    ax.set_ylabel("Pass@N (fraction of problems)")
    ax.set_title("Pass@N, mean and 95% CI over problems")
    ax.legend(title="condition", frameon=False)
    return fig
