"""The attention budget of a run: per (trajectory, step, layer, head) the mass on each key
group, the RSP logit advantage over each group, and the dilution/suppression split of the
change in logit(m_t) since step 1 (rsp_probe.theory.budget). No torch."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rsp_probe.analysis.windows import MIDDLE
from rsp_probe.key_groups import GROUPS, group_sizes
from rsp_probe.probes.names import BUDGET_PROBES
from rsp_probe.runs import Run
from rsp_probe.theory.budget import dilution_part, group_advantage, logit, rsp_advantage

# The dilution share is reported at the end of the fixed middle window (or the last step
# reached), not at a step picked from the curves.
SHARE_STEP = MIDDLE[1]
CELL = ["trajectory", "layer", "head"]


def has_budget(run: Run) -> bool:
    return bool(run.steps["probe"].isin(BUDGET_PROBES).any())


def _sizes(run: Run) -> pd.DataFrame:
    """Per trajectory: k, n (input keys that are not RSP) and each input group's size."""
    rows = []
    for record in run.trajectories.to_dict("records"):
        n_input = len(record["prompt_token_ids"]) + int(record["rsp_tokens"])
        sizes = group_sizes(n_input, record["rsp_positions"], int(record.get("cue_tokens", 0)))
        rows.append({"trajectory": record["id"], "condition": record["condition"],
                     "k": sizes["rsp"], "n": n_input - sizes["rsp"],
                     **{f"size_{g}": s for g, s in sizes.items()}})
    return pd.DataFrame(rows)


def budget_frame(run: Run) -> pd.DataFrame:
    """One row per (trajectory, step, layer, head): the five group masses, the advantage
    delta_<group> of the RSP over each other group, delta over all other keys, and the
    change of logit(m) since step 1 with its dilution and suppression parts."""
    steps = run.steps[run.steps["probe"].isin(BUDGET_PROBES)]
    wide = steps.pivot_table(index=["trajectory", "step", "layer", "head"], columns="probe",
                             values="value", observed=True).reset_index()
    wide = wide.rename(columns=dict(zip(BUDGET_PROBES, GROUPS)))
    wide["trajectory"] = wide["trajectory"].astype(str)
    frame = wide.merge(_sizes(run), on="trajectory")
    frame = frame[frame["k"] > 0].sort_values([*CELL, "step"]).reset_index(drop=True)
    frame["size_generated"] = frame["step"] - 1
    m = frame["rsp"].to_numpy(float)
    for group in GROUPS[1:]:
        frame[f"delta_{group}"] = group_advantage(m, frame["k"], frame[group],
                                                  frame[f"size_{group}"])
    frame["delta"] = rsp_advantage(m, frame["k"], frame["n"], frame["step"])
    frame["logit_m"] = logit(m)
    first = frame[frame["step"] == 1].set_index(CELL)[["delta", "logit_m"]]
    frame = frame.join(first.add_suffix("_1"), on=CELL)
    frame["total"] = frame["logit_m"] - frame["logit_m_1"]
    frame["dilution"] = dilution_part(frame["n"].to_numpy(float), frame["step"])
    frame["suppression"] = frame["delta"] - frame["delta_1"]
    return frame


def dilution_shares(run: Run, step: int = SHARE_STEP) -> pd.DataFrame:
    """Per condition and layer (layer -1: all), at `step` (or the last step any trajectory
    reached): the mean change in logit(m) since step 1, its dilution and suppression parts,
    and the dilution share = mean dilution / mean change, over heads and trajectories with
    finite values. A head whose mass falls to ~0 has a huge logit change, so the same split
    is also given for the pooled mass (logit of the mean m at `step` minus that at step 1;
    pooled_dilution_share), which weighs heads by their mass instead."""
    frame = budget_frame(run)
    rows = []
    for condition, group in frame.groupby("condition"):
        last = min(step, int(group["step"].max()))
        at = group[group["step"] == last]
        at = at[np.isfinite(at["total"])]
        first = group[group["step"] == 1]
        for layer, cells in [*at.groupby("layer"), (-1, at)]:
            total, dilution = cells["total"].mean(), cells["dilution"].mean()
            start = first if layer == -1 else first[first["layer"] == layer]
            pooled = logit(cells["rsp"].mean()) - logit(start["rsp"].mean())
            rows.append({"condition": condition, "layer": int(layer),
                         "step": int(cells["step"].max()) if len(cells) else step,
                         "change": total, "dilution": dilution,
                         "suppression": cells["suppression"].mean(),
                         "dilution_share": dilution / total if total else np.nan,
                         "pooled_change": pooled,
                         "pooled_dilution_share": dilution / pooled if pooled else np.nan,
                         "n_cells": len(cells)})
    return pd.DataFrame(rows)
