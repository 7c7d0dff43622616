"""Pass@N against N per condition, from the passk.parquet of `rsp-probe passk` runs.

The table holds the unbiased Pass@N estimate averaged over problems with a 95% bootstrap
CI resampling problems (rsp_probe.analysis.passk.passk_table); the figure draws it as is,
one line with a CI band per condition, N on a log2 axis: sampling and greedy conditions in
two panels on one y-axis. A third panel draws the paired difference of each RSP condition
from its no-RSP counterpart on the same problems (rsp_probe.analysis.passk.paired_table), a
difference too small to read off the levels.
"""

from __future__ import annotations

import pandas as pd

from rsp_probe.analysis.conditions import condition_k
from rsp_probe.analysis.passk import default_pairs, paired_table
from rsp_probe.analysis.tables import PASSK_FILE
from rsp_probe.errors import UsageError
from rsp_probe.figures import style
from rsp_probe.runs import Run

NAME = "passk"
NEEDS = ("passk",)
COLUMNS = ["run", "series", "condition", "k", "label", "x", "y", "ci_low", "ci_high",
           "n_prompts", "n"]


def data(runs: list[Run]) -> pd.DataFrame:
    """run, condition, label, x (N), y (Pass@N), ci_low, ci_high, n_prompts (problems),
    n (samples per problem)."""
    frames = []
    for run in runs:
        if not run.has(PASSK_FILE):
            raise UsageError(f"{run.path}: no {PASSK_FILE}")
        table = _in_run_order(run, run.table(PASSK_FILE))
        ks = condition_k(run)
        frames.append(pd.DataFrame({
            "run": run.id, "condition": table["condition"],
            "k": table["condition"].map(ks).astype(int), "x": table["k"],
            "y": table["pass_at_k"], "ci_low": table["ci_low"], "ci_high": table["ci_high"],
            "n_prompts": table["n_problems"], "n": table["n"]}))
    out = pd.concat(frames, ignore_index=True).assign(series="level")
    out["label"] = [f"{c}, k={k}" for c, k in zip(out["condition"], out["k"])]
    # Runs that share a condition without an RSP (the same baseline, drawn again with the
    # same seeds) would hide each other: such a curve is drawn once, from its first run.
    first = out.groupby("label", sort=False)["run"].transform("first")
    out = out[out["run"] == first]
    gains = [g for g in (_gains(run, sorted(out["x"].unique())) for run in runs) if len(g)]
    out = pd.concat([out, *gains], ignore_index=True)
    return out[COLUMNS].reset_index(drop=True)


def _gains(run: Run, ns) -> pd.DataFrame:
    """Pass@N of each RSP condition minus its no-RSP counterpart, paired by problem."""
    ks = condition_k(run)
    table = paired_table(run, [int(n) for n in ns], default_pairs(ks.index))
    if table.empty:  # no RSP condition with its counterpart in this run
        return table
    k = table["a"].map(ks).astype(int)
    return pd.DataFrame({
        "run": run.id, "series": "gain", "condition": table["a"], "k": k,
        "label": [f"{a} − {b}, k={v}" for a, b, v in zip(table["a"], table["b"], k)],
        "x": table["k"], "y": table["difference"], "ci_low": table["ci_low"],
        "ci_high": table["ci_high"]})


def _in_run_order(run: Run, table: pd.DataFrame) -> pd.DataFrame:
    """Conditions in the order the command was given them, then by N."""
    named = list(run.config.get("conditions") or [])
    order = {c: i for i, c in enumerate([*named, *sorted(set(table["condition"]) - set(named))])}
    ranked = table.assign(_rank=table["condition"].map(order))
    return ranked.sort_values(["_rank", "k"], kind="stable").drop(columns="_rank")


def make(df: pd.DataFrame):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12.6, 3.9), layout="tight")
    axes[1].sharey(axes[0])
    colors = style.k_colors(df["k"])
    levels = df[df["series"] == "level"]
    for ax, greedy in zip(axes, (False, True)):
        rows = levels[levels["condition"].str.startswith("greedy") == greedy]
        if rows.empty:  # a run without greedy (or without sampled) conditions
            ax.set_visible(False)
            continue
        for label in rows.sort_values("k", kind="stable")["label"].unique():
            curve = rows[rows["label"] == label]
            style.with_band(ax, curve, colors[int(curve["k"].iloc[0])], label, gid=label,
                            marker="o")
        _n_axis(ax, sorted(df["x"].unique()))
        ax.set_title("greedy decoding" if greedy else "temperature sampling")
        ax.legend(frameon=False, loc="lower right")
    axes[0].set_ylabel("Pass@N (fraction of problems)")
    gains = df[df["series"] == "gain"]
    if len(gains):
        _gain_panel(axes[2], gains, colors, sorted(levels["x"].unique()))
    else:
        axes[2].set_visible(False)
    return fig


def _gain_panel(ax, rows: pd.DataFrame, colors: dict, ns) -> None:
    for label in rows.sort_values(["condition", "k"], kind="stable")["label"].unique():
        curve = rows[rows["label"] == label]
        greedy = curve["condition"].iloc[0].startswith("greedy")
        line = style.with_band(ax, curve, colors[int(curve["k"].iloc[0])], label,
                               gid=f"gain:{label}", marker="o", band=not greedy)
        if greedy:  # its CI is in the CSV; four overlapping bands would hide each other
            line.set_linestyle(":")
    ax.axhline(0.0, color="0.3", linewidth=0.8)
    _n_axis(ax, ns, fraction=False)
    ax.set_ylabel("Pass@N difference, RSP − no RSP")
    ax.set_title("paired gain from the RSP")
    ax.legend(frameon=False, fontsize=6, loc="upper left")


def _n_axis(ax, ns, fraction: bool = True) -> None:
    from matplotlib.ticker import FixedLocator, NullLocator

    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(ns))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(ns, [f"{n:g}" for n in ns])
    if fraction:
        ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("N, samples per problem (log2 scale)")


def caption(df: pd.DataFrame) -> str:
    n = df.drop_duplicates("run")
    samples = ", ".join(f"{r.run}: {int(r.n)} samples per problem" for r in n.itertuples())
    return ("Pass@N (the unbiased estimator) against N, one line per condition and k (k=0: "
            "no RSP), mean over problems with a 95% problem-bootstrap CI band "
            f"({style.prompt_count(df).replace('prompts', 'problems')}; {samples}). Left: "
            "temperature sampling with and without an RSP; right: greedy decoding, where an "
            "RSP is the only source of diversity (a baseline shared by several runs is drawn "
            "once); right: the paired difference of each RSP condition from its no-RSP "
            "counterpart on the same problems, with its 95% problem-bootstrap CI band (greedy: "
            "dotted, its CI in passk.csv).")
