"""Every comparison between a run and docs/theory.md as numbers with intervals: what the
theory report prints and what claims read. No torch.

- dilution_statistics(attention run): per head, the excess-exponent test of the dilution
  law with each trajectory's own n, calibrated at the head's noise (analysis.head_fits);
- split_statistics(attention run): the pooled dilution/suppression split and its
  calibration;
- scaling_statistics(influence run): within-cell log-log slopes per head (analysis.scaling);
- branching_statistics(branching run): observed against predicted first divergence per
  condition (analysis.divergence), with a simulated null for the TV distance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rsp_probe.analysis.budget import SHARE_STEP, budget_frame
from rsp_probe.analysis.divergence import (
    divergence_counts,
    greedy_prediction,
    has_pair_overlaps,
    temperature_prediction,
)
from rsp_probe.analysis.head_fits import HeadExponent, head_cells, head_exponents
from rsp_probe.analysis.scaling import THEORY_SLOPES, CellSlope, within_cell_slopes
from rsp_probe.analysis.stats import N_BOOT
from rsp_probe.analysis.tables import BRANCHING_FILE
from rsp_probe.probes.names import COLLISION_PROBE
from rsp_probe.runs import Run
from rsp_probe.theory import simulated_tv_null
from rsp_probe.theory.budget import pooled_split
from rsp_probe.theory.calibration import N_REPLICATES
from rsp_probe.theory.split_calibration import calibrate_split


def dilution_statistics(run: Run, n_rep: int = N_REPLICATES, seed: int = 0) -> list[HeadExponent]:
    """Per (condition, layer, head): the excess-exponent test of the dilution law, each
    trajectory with its own n, calibrated at the head's own design and noise."""
    return head_exponents(head_cells(run), n_rep=n_rep, seed=seed)


def split_statistics(run: Run, n_rep: int = N_REPLICATES, seed: int = 0) -> dict[int, dict]:
    """k -> the pooled dilution/suppression split (theory.budget.pooled_split) from step 1 to
    the end of the middle window (or the last step reached), with its calibration at the
    run's design and each head's noise (theory.split_calibration), under "calibration"."""
    frame = budget_frame(run)
    frame["prompt_id"] = frame["trajectory"].map(
        run.trajectories.set_index("id")["prompt_id"])
    out = {}
    for _, group in frame.groupby("condition", sort=True):
        step = min(SHARE_STEP, int(group["step"].max()))
        cell = ["trajectory", "layer", "head"]
        last = group[group["step"] == step].set_index(cell)
        first = group[group["step"] == 1].set_index(cell).reindex(last.index)
        k = int(group["k"].iloc[0])
        split = pooled_split(first["rsp"].to_numpy(), last["rsp"].to_numpy(),
                             last["n"].to_numpy(), step, last["prompt_id"].to_numpy(),
                             seed=seed)
        finite = group[np.isfinite(group["delta"])]
        spread = finite["delta"] - finite.groupby(cell)["delta"].transform("mean")
        sigma = spread.groupby([finite["layer"], finite["head"]]).std()
        heads = pd.MultiIndex.from_arrays([last.index.get_level_values("layer"),
                                           last.index.get_level_values("head")])
        delta_1 = np.nan_to_num(first["delta"].to_numpy(), neginf=-1e3, posinf=1e3)
        rates = (calibrate_split(delta_1, last["n"].to_numpy(), k, step,
                                 last["prompt_id"].to_numpy(),
                                 sigma.reindex(heads).fillna(0.0).to_numpy(), n_rep, seed)
                 if n_rep > 0 else {})
        out[k] = {**split, "step": step, "calibration": rates}
    return out


def scaling_statistics(run: Run, n_boot: int = N_BOOT, seed: int = 0) -> list[CellSlope]:
    """Within-cell slopes of every head for each quantity the theory predicts a slope for."""
    present = set(run.steps["probe"].unique())
    return [slope for quantity in THEORY_SLOPES if quantity in present
            for slope in within_cell_slopes(run, quantity, n_boot=n_boot, seed=seed)]


def branching_statistics(run: Run, seed: int = 0) -> dict[str, dict]:
    """Per condition: the hazard model, its free parameters, TV(observed, predicted) with the
    simulated null (p-value: a correct prediction shows a TV this large that often), and
    the never-diverged shares; conditions without a prediction are left out."""
    frame = run.table(BRANCHING_FILE)
    horizon = int(frame.loc[frame["record"] == "distinct_prefix_fraction", "step"].max())
    traj = run.trajectories
    temperature = traj.groupby("condition")["temperature"].first()
    k = traj.groupby("condition")["rsp_tokens"].first()
    can_sample = has_pair_overlaps(run) or COLLISION_PROBE in set(run.steps["probe"].unique())
    out = {}
    for condition in temperature.index:
        if temperature[condition] == 0 and k[condition] > 0:
            rows = frame[(frame["condition"] == condition)
                         & (frame["record"] == "first_divergence")]
            try:
                fit = greedy_prediction(run, condition, divergence_counts(rows, horizon))
            except ValueError as err:
                out[condition] = {"model": "greedy", "error": str(err)}
                continue
            result = {"model": "greedy", "c": fit.c, "observed": fit.observed,
                      "predicted": fit.predicted, "tv": fit.tv, "n_pairs": fit.n_trajectories}
        elif temperature[condition] > 0 and can_sample:
            result = {"model": "collision", **temperature_prediction(run, condition)}
        else:
            continue
        null = simulated_tv_null(result["predicted"], result["n_pairs"], result["tv"], seed=seed)
        out[condition] = {**result, "null": null,
                          "never_observed": float(result["observed"].never),
                          "never_predicted": float(result["predicted"].never)}
    return out
