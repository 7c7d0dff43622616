"""Tables of a `rsp-probe compare-prompts` run (no torch).

compare_prompts.parquet, one row per arm: sampled accuracy and Pass@k, first divergence from
the sampled no-prompt twin and the teacher-forced KL (analysis/knockout.condition_table),
greedy accuracy, early entropy (analysis/windows.EARLY) and the attention mass on the slots
in the early and middle windows, each a mean over prompts with a 95% bootstrap CI, plus the
strategy-diversity statistics (analysis/diversity). compare_paired.parquet: paired
differences between arms on the same prompts (a minus b, CIs resampling prompts).
compare_curves.parquet: attention mass and entropy per arm and step, CIs over prompts.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

import numpy as np
import pandas as pd

from rsp_probe.analysis.attention import step_means
from rsp_probe.analysis.diversity import diversity_frame
from rsp_probe.analysis.knockout import condition_table
from rsp_probe.analysis.pass_at_k import paired_difference
from rsp_probe.analysis.stats import bootstrap_indices, percentile_interval, summarise_by_step
from rsp_probe.analysis.windows import EARLY, MIDDLE
from rsp_probe.probes.names import ATTENTION_PROBE
from rsp_probe.runs import Run

COMPARE_FILE = "compare_prompts.parquet"
PAIRED_FILE = "compare_paired.parquet"
CURVES_FILE = "compare_curves.parquet"
NONE, GREEDY, KL_PROBE = "none", "greedy-", "compare_kl"
CURVE_STEPS = tuple(range(1, 65))
# (a, b) pairs whose differences are reported, when both arms ran
PAIRS = (("trained", NONE), ("rsp", NONE), ("trained", "rsp"), ("trained-fit", "trained"),
         ("trained-fit", "rsp"), ("trained+noise", "trained"))
PAIRED_MEASURES = ("accuracy", "greedy_accuracy", "early_entropy", "distinct_strategies")


def derived_files(run: Run, ks: Sequence[int]) -> dict:
    per_prompt = prompt_measures(run)
    return {COMPARE_FILE: arm_table(run, ks, per_prompt),
            PAIRED_FILE: paired_table(run, per_prompt),
            CURVES_FILE: curves(run)}


def _sampled(run: Run):
    """The sampled conditions only, shaped like a run for condition_table."""
    records = run.trajectories
    keep = ~records["condition"].str.startswith(GREEDY)
    ids = set(records.loc[keep, "id"])
    return SimpleNamespace(trajectories=records[keep].reset_index(drop=True),
                           steps=run.steps[run.steps["trajectory"].isin(ids)])


def _window_mean(run: Run, probe: str, window: tuple[int, int]) -> pd.Series:
    """Per trajectory: the probe's mean over the window's steps (layers and heads averaged)."""
    values = step_means(run, probe).reset_index()
    inside = values[(values["step"] >= window[0]) & (values["step"] <= window[1])]
    return inside.groupby("trajectory", observed=True)["value"].mean()


def prompt_measures(run: Run) -> pd.DataFrame:
    """arm, prompt_id and each measure averaged over that prompt's trajectories."""
    records = run.trajectories.copy()
    records["correct"] = records["correct"].astype(float)
    records["early_entropy"] = records["id"].map(_window_mean(run, "entropy", EARLY))
    records["early_attention"] = records["id"].map(_window_mean(run, ATTENTION_PROBE, EARLY))
    records["middle_attention"] = records["id"].map(_window_mean(run, ATTENTION_PROBE, MIDDLE))
    greedy = records["condition"].str.startswith(GREEDY)
    sampled = records[~greedy].groupby(["arm", "prompt_id"], sort=False).agg(
        accuracy=("correct", "mean"), n_correct=("correct", "sum"), n=("correct", "size"),
        early_entropy=("early_entropy", "mean"), early_attention=("early_attention", "mean"),
        middle_attention=("middle_attention", "mean"))
    greedy_acc = records[greedy].groupby(["arm", "prompt_id"], sort=False)["correct"].mean()
    diversity = diversity_frame(records[~greedy]).set_index(["condition", "prompt_id"])
    diversity.index.names = ["arm", "prompt_id"]
    frame = sampled.join(greedy_acc.rename("greedy_accuracy")).join(diversity)
    return frame.reset_index()


def _ci(values: np.ndarray) -> tuple[float, float, float]:
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return (np.nan, np.nan, np.nan)
    low, high = percentile_interval(values[bootstrap_indices(values.size)].mean(axis=1))
    return float(values.mean()), float(low), float(high)


def arm_table(run: Run, ks: Sequence[int], per_prompt: pd.DataFrame) -> pd.DataFrame:
    base = condition_table(_sampled(run), ks, (NONE,), KL_PROBE, lambda group: {})
    rows = []
    for arm, group in per_prompt.groupby("arm", sort=False):
        row = {"arm": arm}
        for measure in ("greedy_accuracy", "early_entropy", "early_attention",
                        "middle_attention", "distinct_strategies", "edit_distance"):
            mean, lo, hi = _ci(group[measure].to_numpy())
            row.update({measure: mean, f"{measure}_lo": lo, f"{measure}_hi": hi})
        rows.append(row)
    table = base.rename(columns={"condition": "arm"}).merge(pd.DataFrame(rows), on="arm")
    return table


def paired_table(run: Run, per_prompt: pd.DataFrame) -> pd.DataFrame:
    """a - b per measure on the prompts both arms have, with 95% CIs over prompts (pass@1
    through analysis/pass_at_k.paired_difference, the others as paired mean differences)."""
    arms = set(per_prompt["arm"])
    indexed = per_prompt.set_index(["arm", "prompt_id"])
    rows = []
    for a, b in PAIRS:
        if a not in arms or b not in arms:
            continue
        left, right = indexed.loc[a], indexed.loc[b]
        prompts = left.index.intersection(right.index)
        left, right = left.loc[prompts], right.loc[prompts]
        diff, lo, hi = paired_difference(left["n_correct"].round().astype(int).to_numpy(),
                                         right["n_correct"].round().astype(int).to_numpy(),
                                         left["n"].to_numpy(), right["n"].to_numpy(), 1)
        rows.append({"a": a, "b": b, "measure": "pass@1", "diff": diff, "lo": lo, "hi": hi,
                     "n_prompts": len(prompts)})
        for measure in PAIRED_MEASURES[1:]:
            diff, lo, hi = _ci((left[measure] - right[measure]).to_numpy())
            rows.append({"a": a, "b": b, "measure": measure, "diff": diff, "lo": lo, "hi": hi,
                         "n_prompts": len(prompts)})
    return pd.DataFrame(rows, columns=["a", "b", "measure", "diff", "lo", "hi", "n_prompts"])


def curves(run: Run) -> pd.DataFrame:
    """Mean attention mass on the slots and entropy per (arm, step) of the sampled
    conditions, 95% CIs over prompts."""
    frames = []
    meta = run.trajectories[["id", "arm", "prompt_id", "condition"]].rename(
        columns={"id": "trajectory"})
    meta = meta[~meta["condition"].str.startswith(GREEDY)]
    for probe in (ATTENTION_PROBE, "entropy"):
        values = step_means(run, probe).reset_index().merge(meta, on="trajectory")
        if values.empty:
            continue
        frames.append(summarise_by_step(values.assign(probe=probe), steps=CURVE_STEPS,
                                        by=("arm", "probe")))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _cell(row: dict, measure: str, digits: int = 3) -> str:
    return (f"{row[measure]:.{digits}f} [{row[f'{measure}_lo']:.{digits}f}, "
            f"{row[f'{measure}_hi']:.{digits}f}]")


def describe_compare(run: Run, full: bool = False) -> str:
    """The arms' table and the paired differences, as `compare-prompts` prints them."""
    from rsp_probe.analysis.summaries import _header

    table, paired = run.table(COMPARE_FILE), run.table(PAIRED_FILE)
    passk = [c for c in table.columns if c.startswith("pass@") and c[5:].isdigit()]
    config = run.config
    lines = [_header(run) + f"  T={config['temperature']}  k={config['rsp_tokens'][0]}  "
             f"soft_prompt={config['soft_prompt']}", "",
             "## per arm, mean over prompts [95% CI]: sampled and greedy accuracy, Pass@k; "
             f"entropy (nats) and slot attention mass at steps {EARLY[0]}-{EARLY[1]}; "
             "KL(p_arm || p_none) teacher-forced at step 1; share identical to the no-prompt "
             "twin; distinct strategies per prompt"]
    for r in table.to_dict("records"):
        lines.append("  ".join([
            f"{r['arm']:>14}", f"acc {_cell(r, 'accuracy')}",
            f"greedy {_cell(r, 'greedy_accuracy')}",
            *(f"{c} {r[c]:.3f}" for c in passk),
            f"H early {_cell(r, 'early_entropy', 2)}",
            f"attn early {r['early_attention']:.3f} mid {r['middle_attention']:.3f}",
            f"KL t1 {r['kl_step1']:.3g}", f"same {r['same_as_none']:.2f}",
            f"strategies {r['distinct_strategies']:.2f}"]))
    lines += ["", "## paired differences a - b on the same prompts [95% CI over prompts]"]
    for r in paired.to_dict("records"):
        lines.append(f"{r['a']:>14} - {r['b']:<10} {r['measure']:>20}  {r['diff']:+.3f} "
                     f"[{r['lo']:+.3f}, {r['hi']:+.3f}]")
    return "\n".join(lines)
