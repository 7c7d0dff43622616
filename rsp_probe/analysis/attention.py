"""RSP attention mass from a run: per-layer curves, the heads that absorb most, and the
dilution-law fits of rsp_probe.theory. No torch."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rsp_probe.analysis.stats import summarise_by_step
from rsp_probe.probes.names import ATTENTION_PROBE
from rsp_probe.runs import Run
from rsp_probe.theory import compare_models

ALL_LAYERS = -1  # the layer label of the average over layers and heads
MIN_TRAJECTORIES = 3  # a step enters a fit only when this many trajectories reached it


def step_means(run: Run, probe: str = ATTENTION_PROBE) -> pd.Series:
    """The one layer-and-head average: a probe's value per (trajectory, step), averaged over
    every layer and head it has (a scalar probe comes back unchanged)."""
    steps = run.steps[run.steps["probe"] == probe]
    return steps.groupby(["trajectory", "step"], observed=True)["value"].mean()


def head_averaged(run: Run) -> pd.DataFrame:
    """Mass averaged over heads per (trajectory, step, layer), plus layer=-1 over all layers
    and heads (step_means)."""
    steps = run.steps[run.steps["probe"] == ATTENTION_PROBE]
    per_layer = steps.groupby(["trajectory", "step", "layer"], observed=True)["value"].mean()
    per_layer = per_layer.reset_index()
    overall = step_means(run).reset_index()
    frame = pd.concat([per_layer, overall.assign(layer=ALL_LAYERS)], ignore_index=True)
    meta = run.trajectories[["id", "condition", "prompt_id", "rsp_tokens"]]
    return frame.merge(meta.rename(columns={"id": "trajectory"}), on="trajectory")


def layer_summary(run: Run, steps=(1, 2, 5, 10, 20, 50)) -> pd.DataFrame:
    """Mean mass per condition and layer at report steps, CIs over prompts."""
    return summarise_by_step(head_averaged(run), steps=steps, by=("condition", "layer"))


def top_heads(run: Run, step: int = 1, n: int = 5) -> pd.DataFrame:
    steps = run.steps[(run.steps["probe"] == ATTENTION_PROBE) & (run.steps["step"] == step)]
    meta = run.trajectories[["id", "condition"]].rename(columns={"id": "trajectory"})
    means = steps.merge(meta, on="trajectory").groupby(
        ["condition", "layer", "head"], observed=True)["value"].mean().reset_index()
    return (means.sort_values("value", ascending=False).groupby("condition").head(n)
            .sort_values(["condition", "value"], ascending=[True, False]))


def mean_curve(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean over trajectories at each step with enough trajectories: step, mass, n."""
    grouped = frame.groupby("step")["value"]
    curve = pd.DataFrame({"mass": grouped.mean(), "n": grouped.size()}).reset_index()
    return curve[curve["n"] >= MIN_TRAJECTORIES]


def dilution_fits(run: Run) -> dict:
    """Per condition: every candidate law fitted to each layer's and the average mass curve,
    sorted by AIC. n is the mean input length without the RSP (the theory's n)."""
    frame = head_averaged(run)
    lengths = run.trajectories.set_index("id")["prompt_token_ids"].map(len)
    out = {}
    for condition, group in frame.groupby("condition"):
        k = int(group["rsp_tokens"].iloc[0])
        n = float(lengths[group["trajectory"].unique()].mean())
        layers = {}
        for layer, rows in group.groupby("layer"):
            curve = mean_curve(rows)
            layers[str(layer)] = _fit_all(curve, n, k)
        out[condition] = {"k": k, "n": n, "layers": layers}
    return out


def _fit_all(curve: pd.DataFrame, n: float, k: int) -> dict:
    t, m = curve["step"].to_numpy(float), curve["mass"].to_numpy(float)
    try:
        # The optimiser probes parameters where exp overflows and flat curves have no
        # standard error; AIC judges the fits, so those numpy warnings are noise on stderr
        # (to_dict writes an undefined standard error or R^2 as null).
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            fits = [fit.to_dict() for fit in compare_models(t, m, n, k)]
    except ValueError as err:  # too few steps, or no mass at all: say so in the file
        return {"error": str(err), "fits": []}
    return {"best": fits[0]["model"] if fits else None, "fits": fits,
            "steps": t.astype(int).tolist(), "mass": np.round(m, 8).tolist()}
