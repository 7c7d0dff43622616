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
from rsp_probe.theory.budget import (
    dilution_part,
    group_advantage,
    logit,
    pooled_split,
    rsp_advantage,
)

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


def dilution_shares(run: Run, step: int = SHARE_STEP, n_boot: int = 2000,
                    seed: int = 0) -> pd.DataFrame:
    """Per condition and layer (layer -1: all) at `step` (or the last step reached), the split
    of the fall of the RSP mass since step 1 (shares_at_step on the run's budget frame)."""
    frame = budget_frame(run)
    frame["prompt_id"] = frame["trajectory"].map(run.trajectories.set_index("id")["prompt_id"])
    return shares_at_step(frame, step, n_boot, seed)


def shares_at_step(frame: pd.DataFrame, step: int = SHARE_STEP, n_boot: int = 2000,
                   seed: int = 0) -> pd.DataFrame:
    """Two splits of the change since step 1 over the cells (trajectory, layer, head) that
    reached `step`. Logit average: change, dilution, suppression and dilution_share over the
    cells whose logit change is finite; a cell whose mass is exactly 0 (or 1) at step 1 or at
    `step` has an infinite logit and is left out, counted in n_left_out. Pooled mass
    (theory.budget.pooled_split): every cell, a zero mass entering as 0, in mass units, with
    cluster-bootstrap intervals over prompts; zero_1 / zero_s count the cells of mass 0 at
    step 1 / at `step`, rises the cells whose mass rose."""
    rows = []
    for condition, group in frame.groupby("condition"):
        last = min(step, int(group["step"].max()))
        at = group[group["step"] == last].set_index(CELL)
        first = group[group["step"] == 1].set_index(CELL).reindex(at.index)
        for layer in [*sorted(at.index.unique("layer")), -1]:
            keep = np.ones(len(at), bool) if layer == -1 else \
                (at.index.get_level_values("layer") == layer)
            rows.append({"condition": condition, "layer": int(layer), "step": last,
                         **_logit_split(at[keep]),
                         **_pooled(first[keep], at[keep], last, n_boot, seed)})
    return pd.DataFrame(rows)


def _logit_split(cells: pd.DataFrame) -> dict:
    finite = cells[np.isfinite(cells["total"])]
    total, dilution = finite["total"].mean(), finite["dilution"].mean()
    return {"change": total, "dilution": dilution, "suppression": finite["suppression"].mean(),
            "dilution_share": dilution / total if total else np.nan, "n_cells": len(cells),
            "n_left_out": len(cells) - len(finite)}


def _pooled(first: pd.DataFrame, at: pd.DataFrame, step: int, n_boot: int, seed: int) -> dict:
    split = pooled_split(first["rsp"].to_numpy(float), at["rsp"].to_numpy(float),
                         at["n"].to_numpy(float), step, at["prompt_id"].to_numpy(),
                         n_boot=n_boot, seed=seed)
    out = {f"pooled_{part}": split[part][0] for part in
           ("total", "dilution", "suppression", "dilution_share")}
    low, high = split["dilution_share"][1:]
    return {**out, "pooled_share_low": low, "pooled_share_high": high,
            **{name: split[name] for name in ("zero_1", "zero_s", "rises")}}
