"""Knockout measures from a run: each intervention against the full-RSP run and the baseline
on the same prompts, draws and sampling seeds. No torch.

Per condition (full, baseline, and each knockout): accuracy and pass@k with 95% bootstrap
CIs over prompts; the share of trajectories token-identical to their full-RSP twin (same
prompt and sample) and the mean first divergence step of the others; the same against the
baseline; distinct trajectories per prompt (branching) and distinct strategies where the
records carry one; the teacher-forced KL(p_full || p_knocked) along the full run's tokens,
at steps 1..3 and averaged over all steps; the next-token entropy of the condition's own
trajectories at step 1 and averaged over steps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from rsp_probe.analysis.pass_at_k import bootstrap_pass_at_k
from rsp_probe.analysis.stats import bootstrap_mean
from rsp_probe.runs import Run

KL_PROBE = "knockout_kl"
ENTROPY_PROBE = "entropy"  # nats, of the sampler's logits at temperature 1
FULL, BASELINE = "full", "baseline"


def first_divergence(a: Sequence[int], b: Sequence[int]) -> float:
    """1-based step of the first differing token; nan when the two are identical (a
    trajectory that stops earlier diverges at the step after its end)."""
    for step, (x, y) in enumerate(zip(a, b), start=1):
        if x != y:
            return float(step)
    return float("nan") if len(a) == len(b) else float(min(len(a), len(b)) + 1)


def _against(records: pd.DataFrame, reference: str) -> pd.DataFrame:
    twins = records[records["condition"] == reference].set_index(["prompt_id", "sample"])
    tokens = twins["generated_token_ids"]
    steps = [first_divergence(row.generated_token_ids, tokens[(row.prompt_id, row.sample)])
             for row in records.itertuples()]
    return pd.Series(steps, index=records.index)


def _kl(run: Run, probe: str, prefix: str = "kl") -> pd.DataFrame:
    """Per trajectory: the probe's mean over steps ({prefix}_mean) and steps 1..3."""
    steps = run.steps[run.steps["probe"] == probe]
    per_trajectory = steps.groupby("trajectory", observed=True).agg(
        **{f"{prefix}_mean": ("value", "mean")})
    early = steps[steps["step"] <= 3].pivot_table(index="trajectory", columns="step",
                                                   values="value", observed=True)
    early.columns = [f"{prefix}_step{int(c)}" for c in early.columns]
    return per_trajectory.join(early).reset_index().astype({"trajectory": str})


# runs written before the paths were sampled kept their teacher-forced KL on the full run
LEGACY_PATH_PROBES = {"direct-only": "kl_direct_only", "indirect-only": "kl_indirect_only"}


def knockout_table(run: Run, ks: Sequence[int]) -> pd.DataFrame:
    """One row per condition (full, baseline, each cut, layer and path)."""
    table = condition_table(run, ks, (FULL, BASELINE), KL_PROBE, _describe)
    if (table["kind"] == "path").any():
        return table
    paths = []
    for name, probe in LEGACY_PATH_PROBES.items():
        kl = _kl(run, probe)
        if len(kl):
            paths.append({"kind": "path", "condition": name, "cut_after": np.nan, "layers": "",
                          **{c: float(kl[c].mean()) for c in kl.columns if c != "trajectory"}})
    return pd.concat([table, pd.DataFrame(paths)], ignore_index=True) if paths else table


def condition_table(run: Run, ks: Sequence[int], references: Sequence[str], kl_probe: str,
                    describe) -> pd.DataFrame:
    """One row per condition: describe(group) and the measures, against each reference
    condition (same prompt and sample) and with the teacher-forced KL probe `kl_probe`."""
    records = run.trajectories.copy()
    for reference in references:
        records[f"div_{reference}"] = _against(records, reference)
    for per_trajectory in (_kl(run, kl_probe), _kl(run, ENTROPY_PROBE, "entropy")):
        records = records.merge(per_trajectory, left_on="id", right_on="trajectory",
                                how="left").drop(columns="trajectory")
    n = int(records.groupby(["condition", "prompt_id"]).size().max())
    rows = []
    for condition, group in records.groupby("condition", sort=False):
        rows.append({**describe(group), **_measures(group, n, ks, references),
                     "condition": condition})
    return pd.DataFrame(rows)


def _describe(group: pd.DataFrame) -> dict:
    knockout = group["intervention"].iloc[0] if "intervention" in group else None
    if not isinstance(knockout, dict):
        return {"kind": "reference", "cut_after": np.nan, "layers": ""}
    if knockout.get("path"):
        return {"kind": "path", "cut_after": np.nan, "layers": ""}
    layers = knockout.get("layers")
    return {"kind": "cut" if layers is None else "layer",
            "cut_after": np.nan if knockout["cut_after"] is None else knockout["cut_after"],
            "layers": "" if layers is None else "+".join(map(str, layers))}


def _measures(group: pd.DataFrame, n: int, ks: Sequence[int], references) -> dict:
    correct = group["correct"].astype(float)
    per_prompt = group.assign(correct=correct).groupby("prompt_id")
    accuracy = bootstrap_mean(per_prompt["correct"].mean().to_numpy())
    out = {"accuracy": accuracy[0], "accuracy_lo": accuracy[1], "accuracy_hi": accuracy[2]}
    counts = per_prompt["correct"].sum().round().astype(int).to_numpy()
    for k in ks:
        mean, lo, hi = bootstrap_pass_at_k(counts, n, k)
        out.update({f"pass@{k}": mean, f"pass@{k}_lo": lo, f"pass@{k}_hi": hi})
    distinct = per_prompt["generated_token_ids"].agg(lambda s: len({tuple(t) for t in s}))
    out["distinct_per_prompt"] = float(distinct.mean())
    if "strategy" in group:
        out["strategies_per_prompt"] = float(per_prompt["strategy"].nunique().mean())
    for reference in references:
        steps = group[f"div_{reference}"]
        out[f"same_as_{reference}"] = float(steps.isna().mean())
        out[f"first_divergence_{reference}"] = float(steps.mean())  # over diverged ones
        for q in (25, 50, 75):
            out[f"first_divergence_{reference}_p{q}"] = (
                float(np.nanpercentile(steps, q)) if steps.notna().any() else np.nan)
    for column in ("kl_step1", "kl_step2", "kl_step3", "kl_mean", "entropy_step1",
                   "entropy_mean"):
        out[column] = float(group[column].mean()) if column in group else np.nan
    return out
