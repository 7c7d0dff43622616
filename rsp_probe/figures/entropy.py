"""Next-token entropy (nats) by step: the baseline (k=0) against RSPs of several k.

One curve per condition of each `rsp-probe entropy` run: the mean over prompts (trajectories
of a prompt averaged first) with a 95% bootstrap CI band resampling prompts
(rsp_probe.analysis.stats.summarise_by_step). With several runs, labels carry the run id.
"""

from __future__ import annotations

import pandas as pd

from rsp_probe.analysis.conditions import condition_k
from rsp_probe.analysis.stats import summarise_by_step
from rsp_probe.analysis.summaries import probe_frame
from rsp_probe.figures import style
from rsp_probe.runs import Run

NAME = "entropy"
NEEDS = ("entropy",)
COLUMNS = ["run", "condition", "k", "label", "x", "y", "ci_low", "ci_high", "n_prompts"]


PAPER_LAW = {"law": "gaussian", "sigma_scale": 1.0, "placement": "suffix", "fixed_draw": False}


def main_runs(runs: list[Run]) -> list[Run]:
    """Runs with the paper's RSP law and placement; ablation runs go to the ablations figure.
    When every run is an ablation, draw them all."""
    main = [run for run in runs if all(run.config.get(key) == value
                                       for key, value in PAPER_LAW.items())]
    return main or runs


def data(runs: list[Run]) -> pd.DataFrame:
    """run, condition, k, label, x (step), y (mean entropy, nats), ci_low, ci_high, n_prompts."""
    frames = []
    for run in main_runs(runs):
        frame = probe_frame(run, ["entropy"])
        steps = sorted(frame["step"].unique())
        summary = style.running_steps(summarise_by_step(frame, steps=steps, by=("condition",)),
                                      keys=("condition",))
        frames.append(summary.assign(run=run.id,
                                     k=summary["condition"].map(condition_k(run)).astype(int)))
    out = pd.concat(frames, ignore_index=True).rename(
        columns={"step": "x", "mean": "y"})
    prefix = style.run_prefix(out)
    out["label"] = [f"{prefix[r]}k={k}" for r, k in zip(out["run"], out["k"])]
    return style.sort_conditions(out)[COLUMNS]


def make(df: pd.DataFrame):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.0, 3.4), layout="tight")
    labels = list(dict.fromkeys(df["label"]))
    runs = df["run"].nunique()
    k_color = style.k_colors(df["k"])
    colors = [k_color[k] for k in df.drop_duplicates("label")["k"]] if runs == 1 else \
        style.palette(len(labels))  # several runs: one colour per (run, k)
    for color, label in zip(colors, labels):
        style.with_band(ax, df[df["label"] == label], color, label, gid=label)
    style.log_axis(ax)
    ax.set_xlabel("decoding step t (log scale)")
    ax.set_ylabel("next-token entropy (nats)")
    ax.set_title("Next-token entropy: baseline (k=0) against RSPs")
    ax.legend(frameon=False)
    return fig


def caption(df: pd.DataFrame) -> str:
    return ("Next-token entropy (nats, untempered) by decoding step, one line per k (k=0: no "
            "RSP), mean over prompts (each prompt's trajectories averaged first) with a 95% "
            f"prompt-bootstrap CI band ({style.prompt_count(df)}); steps are drawn while at "
            "least half of the prompts still run. Runs with the paper's law and placement "
            "only; ablations are in ablations.png. The lift itself, prompt by prompt, is "
            "panel (b) of mechanism.png.")
