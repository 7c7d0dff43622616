"""DAPO training with and without an RSP per rollout (`rsp-probe train-rl` runs): held-out
probes of each checkpoint along training, both arms, mean over seeds and problems with 95%
CIs of the hierarchical bootstrap (seeds, then problems; rsp_probe.analysis.train_rl).

Panels: Pass@1, Pass@k at the largest k, the per-step next-token entropy (nats, all steps),
and the RSP's teacher-forced influence (KL of the next-token distribution with an RSP against
without, along the checkpoint's greedy continuation). Colour is the training arm (no-RSP
arm: no RSP in training; RSP arm: a fresh RSP in every rollout and in the loss's forward pass),
the line style how the checkpoint is sampled at test time (plainly, or with a fresh RSP per
sample).
"""

from __future__ import annotations

import pandas as pd

from rsp_probe.analysis.train_rl import ARM_LABELS, CONDITION_LABELS, curve, eval_frame
from rsp_probe.errors import UsageError
from rsp_probe.figures import style
from rsp_probe.runs import Run

NAME = "train_rl"
NEEDS = ("train-rl",)
COLUMNS = ["panel", "arm", "condition", "label", "x", "y", "ci_low", "ci_high", "n_seeds",
           "n_prompts"]
ARM_COLORS = {"none": style.COLORBLIND[0], "rsp": style.COLORBLIND[1]}
CONDITION_STYLES = {"temp": "-", "rsp+temp": ":"}
PANEL_TITLES = {"entropy_all": "next-token entropy, nats (held-out, all steps)",
                "influence_kl": "RSP influence: KL(with || without), nats"}


def panels(metrics: set[str]) -> list[str]:
    """Pass@1, Pass@(largest k), entropy, influence: those the runs hold."""
    ks = sorted(int(m.split("@")[1]) for m in metrics if m.startswith("pass@"))
    chosen = ["pass@1", f"pass@{ks[-1]}"] if ks and ks[-1] > 1 else ["pass@1"]
    return [p for p in [*chosen, "entropy_all", "influence_kl"] if p in metrics]


def data(runs: list[Run]) -> pd.DataFrame:
    if not runs:
        raise UsageError("no train-rl runs")
    frame = eval_frame(runs)
    rows = []
    for panel in panels(set(frame["metric"])):
        for arm in [a for a in ARM_LABELS if a in set(frame["arm"])]:
            conditions = ["rsp+temp"] if panel == "influence_kl" else list(CONDITION_STYLES)
            for condition in conditions:
                found = curve(frame, arm, condition, panel)
                if found.empty:
                    continue
                label = f"{ARM_LABELS[arm]}, {CONDITION_LABELS[condition]}"
                rows.append(found.rename(columns={"step": "x"}).assign(
                    panel=panel, arm=arm, condition=condition, label=label))
    if not rows:
        raise UsageError("the train-rl runs hold no probed checkpoints")
    return pd.concat(rows, ignore_index=True)[COLUMNS]


def make(df: pd.DataFrame):
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    names = list(dict.fromkeys(df["panel"]))
    rows, cols = style.grid(len(names), max_cols=2)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows + 0.9), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    for ax, panel in zip(axes.flat, names):
        rows = df[df["panel"] == panel]
        for label in dict.fromkeys(rows["label"]):
            line = rows[rows["label"] == label]
            color = ARM_COLORS[line["arm"].iloc[0]]
            drawn = style.with_band(ax, line, color, label, gid=f"{panel}:{label}", marker="o")
            drawn.set_linestyle(CONDITION_STYLES[line["condition"].iloc[0]])
        ax.set_xlabel("DAPO update")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(PANEL_TITLES.get(panel, f"held-out {panel.replace('pass', 'Pass')}"),
                     fontsize=8)
        if panel.startswith("pass@"):
            ax.set_ylim(0, 1)
            ax.set_ylabel("fraction of problems")
        else:
            ax.set_ylim(bottom=0)
            ax.set_ylabel("nats")
    # one legend (every label appears in the first panel), under the last row's first panel
    handles, labels = axes.flat[0].get_legend_handles_labels()
    axes[-1, 0].legend(handles, labels, loc="upper left", bbox_to_anchor=(0.0, -0.2),
                       ncol=1, frameon=False, fontsize=7)
    fig.suptitle("DAPO with and without an RSP per rollout: held-out probes along training",
                 fontsize=8)
    return fig


def caption(df: pd.DataFrame) -> str:
    seeds, prompts = int(df["n_seeds"].max()), int(df["n_prompts"].max())
    return (f"Held-out probes of each DAPO checkpoint ({seeds} seeds per arm x {prompts} "
            "held-out problems), mean with a 95% CI band of the hierarchical bootstrap (seeds, "
            "then problems). Colour: the training arm (no RSP in the rollouts, or a fresh RSP "
            "in every rollout and in the loss's forward pass). Line style: how the checkpoint "
            "is sampled at test time (solid: temperature alone; dotted: with a fresh RSP per "
            "sample). Panels: Pass@1 and Pass@k at the largest k (fraction of problems), the "
            "next-token entropy over all steps, and the RSP's teacher-forced influence "
            "(KL with against without, along the checkpoint's greedy continuation).")
