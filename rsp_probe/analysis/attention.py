"""RSP attention mass from a run: per-layer curves, the heads that absorb most, and the
dilution law fitted with each trajectory's own prompt length. No torch."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rsp_probe.analysis.stats import summarise_by_step
from rsp_probe.analysis.tables import DILUTION_FILE
from rsp_probe.probes.names import ATTENTION_PROBE
from rsp_probe.runs import Run
from rsp_probe.theory import dilution_mass
from rsp_probe.theory.common_delta import fit_common_delta

ALL_LAYERS = -1  # the layer label of the average over layers and heads
MIN_TRAJECTORIES = 3  # a step enters a fit only when this many trajectories reached it
MIN_FIT_STEPS = 3
N_BOOT_FIT = 400
FIT_METHOD = "one delta per layer, fitted jointly over trajectories, each with its own n"


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


def dilution_fits(run: Run, n_boot: int = N_BOOT_FIT, seed: int = 0) -> dict:
    """Per condition and layer (layer -1: the mean over layers and heads): one delta of the
    dilution law fitted jointly to every trajectory's mass curve, each trajectory with its
    own prompt length n_i (never a curve averaged over prompts of different lengths), with a
    prompt-bootstrap interval of the whole fit. A description of the curves, not a test of
    the law (that is the calibrated excess-exponent test, theory/exponent.py)."""
    frame = head_averaged(run)
    lengths = run.trajectories.set_index("id")["prompt_token_ids"].map(len).astype(float)
    frame = frame.assign(n=frame["trajectory"].map(lengths))
    out = {}
    for condition, group in frame.groupby("condition"):
        k = int(group["rsp_tokens"].iloc[0])
        n = group.drop_duplicates("trajectory")["n"]
        layers = {str(layer): _joint_fit(rows, k, n_boot, seed)
                  for layer, rows in group.groupby("layer")}
        out[condition] = {"k": k, "method": FIT_METHOD, "n_min": float(n.min()),
                          "n_max": float(n.max()), "layers": layers}
    return out


def saved_or_fitted(run: Run) -> dict:
    """The run's dilution_fit.json when it holds the per-trajectory fit, else the fit
    recomputed (files written before it hold fits to prompt-averaged curves)."""
    if run.has(DILUTION_FILE):
        saved = run.json(DILUTION_FILE)
        if saved and all(entry.get("method") == FIT_METHOD for entry in saved.values()):
            return saved
    return dilution_fits(run)


def fitted_curve(entry: dict, layer: int) -> pd.DataFrame | None:
    """step, fitted (the mean over prompts of the per-trajectory predictions, as the observed
    mean is taken), delta, delta_low, delta_high of one layer's fit; None without a fit."""
    fit = entry["layers"].get(str(layer), {})
    if fit.get("delta") is None:
        return None
    return pd.DataFrame({"step": fit["steps"], "fitted": fit["fitted"], "delta": fit["delta"],
                         "delta_low": fit["ci"][0], "delta_high": fit["ci"][1]})


def _prompt_mean(values: np.ndarray, rows: pd.DataFrame) -> pd.Series:
    """Per step: the mean over prompts of each prompt's mean over its trajectories."""
    per_prompt = pd.Series(values, index=rows.index).groupby(
        [rows["step"], rows["prompt_id"]]).mean()
    return per_prompt.groupby(level="step").mean()


def _joint_fit(rows: pd.DataFrame, k: int, n_boot: int, seed: int) -> dict:
    counts = rows.groupby("step")["trajectory"].nunique()
    steps = counts.index[counts >= MIN_TRAJECTORIES]
    rows = rows[rows["step"].isin(steps)]
    m = rows["value"].to_numpy(float).clip(0.0, 1.0)  # float32 sums can pass 1 by rounding
    if len(steps) < MIN_FIT_STEPS:
        return {"error": f"fewer than {MIN_FIT_STEPS} steps reached by {MIN_TRAJECTORIES} "
                         "trajectories", "delta": None}
    if m.max() <= 0.0 or m.min() >= 1.0:
        return {"error": "mass is 0 (or 1) everywhere: delta is unbounded", "delta": None}
    t, n = rows["step"].to_numpy(float), rows["n"].to_numpy(float)
    fit = fit_common_delta(m, t, n, k, rows["prompt_id"].to_numpy(), n_boot, seed)
    predicted = dilution_mass(t, n, k, fit["delta"])
    residual = m - predicted
    return {**fit, "n_trajectories": int(rows["trajectory"].nunique()),
            "n_prompts": int(rows["prompt_id"].nunique()), "n_points": int(m.size),
            "rmse": float(np.sqrt(np.mean(residual ** 2))),
            "steps": [int(s) for s in steps],
            "mass": np.round(_prompt_mean(m, rows).to_numpy(), 8).tolist(),
            "fitted": np.round(_prompt_mean(predicted, rows).to_numpy(), 8).tolist()}
