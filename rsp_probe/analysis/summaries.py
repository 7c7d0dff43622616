"""The summaries commands print, recomputed from a run directory alone (`rsp-probe show`)."""

from __future__ import annotations

import pandas as pd

from rsp_probe.analysis.diversity import distinct_strategies, diversity_lines
from rsp_probe.analysis.grades import graded, ungraded_warning
from rsp_probe.analysis.stats import (
    bootstrap_mean,
    natural_groups,
    summarise_by_step,
    summarise_windows,
    wide_table,
)
from rsp_probe.analysis.tables import BRANCHING_FILE, DILUTION_FILE, PASSK_FILE
from rsp_probe.analysis.windows import EARLY, LATE_LAST, MIDDLE
from rsp_probe.probes.names import INFLUENCE_PROBES, LOGIT_PROBES
from rsp_probe.runs import Run

SHORT_STEPS = (1, 5, 20)  # the step columns of the default (short) tables


def shown(summary: pd.DataFrame, full: bool) -> pd.DataFrame:
    """All report steps with `full` (`rsp-probe show --full`), else a few."""
    if full or summary.empty or "step" not in summary:
        return summary
    return summary[summary["step"].isin(SHORT_STEPS)]


def probe_frame(run: Run, probes) -> pd.DataFrame:
    """steps.parquet rows of `probes`, joined with each trajectory's condition and prompt."""
    steps = run.steps[run.steps["probe"].isin(probes)]
    meta = run.trajectories[["id", "condition", "prompt_id"]].rename(columns={"id": "trajectory"})
    return steps.merge(meta, on="trajectory", how="left")


def entropy_summary(run: Run) -> pd.DataFrame:
    """Mean of each logit probe at the report steps, with CIs over prompts."""
    return summarise_by_step(probe_frame(run, LOGIT_PROBES))


WINDOW_TITLE = (f"windows: early = steps {EARLY[0]}-{EARLY[1]}, middle = {MIDDLE[0]}-{MIDDLE[1]}"
                f", late = each trajectory's last {LATE_LAST}; mean over prompts, 95% CI")


def window_lines(frame: pd.DataFrame, title: str, row: str = "condition", by=None,
                 digits: int = 3) -> list[str]:
    """The headline table of a per-step quantity: its fixed windows (analysis.windows)."""
    summary = summarise_windows(frame, by=tuple(by or (row,)))
    return ["", f"## {title} ({WINDOW_TITLE})",
            wide_table(summary, row=row, column="window", digits=digits)]


def early_minus_late(run: Run, late_steps: int = LATE_LAST) -> pd.DataFrame:
    """Per condition: entropy over the early window minus entropy over each trajectory's last
    `late_steps` (the late window)."""
    frame = probe_frame(run, ["entropy"])
    last = frame.groupby("trajectory")["step"].transform("max")
    per_trajectory = frame.assign(
        early=frame["value"].where(frame["step"].between(*EARLY)),
        late=frame["value"].where(frame["step"] > last - late_steps),
    ).groupby(["condition", "prompt_id", "trajectory"])[["early", "late"]].mean()
    per_trajectory["diff"] = per_trajectory["early"] - per_trajectory["late"]
    per_prompt = per_trajectory.groupby(["condition", "prompt_id"])["diff"].mean()
    rows = []
    for condition, values in natural_groups(per_prompt, "condition"):
        mean, lo, hi = bootstrap_mean(values.to_numpy())
        rows.append({"condition": condition, "mean": mean, "ci_low": lo, "ci_high": hi,
                     "n_prompts": len(values)})
    return pd.DataFrame(rows)


def accuracy(run: Run) -> pd.DataFrame:
    """Mean over prompts of the share correct among graded trajectories (ungraded left out)."""
    frame = run.trajectories
    if not graded(frame).any():
        return pd.DataFrame()
    frame = frame[graded(frame)]
    per_prompt = frame["correct"].astype(float).groupby(
        [frame["condition"], frame["prompt_id"]]).mean()
    rows = []
    for condition, values in natural_groups(per_prompt, "condition"):
        mean, lo, hi = bootstrap_mean(values.to_numpy(dtype=float))
        rows.append({"condition": condition, "mean": mean, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


def describe_entropy(run: Run, full: bool = False) -> str:
    summary = entropy_summary(run)
    lines = [_header(run, f"T={run.config['temperature']}")]
    lines += window_lines(probe_frame(run, ["entropy"]), "mean entropy (nats)")
    for probe, unit in (("entropy", "nats"), ("top1_prob", ""), ("margin", "logits")):
        lines += ["", f"## mean {probe} {f'({unit}) ' if unit else ''}by step, 95% CI over prompts",
                  wide_table(shown(summary[summary["probe"] == probe], full))]
    diff = early_minus_late(run)
    lines += ["", f"## entropy early (steps {EARLY[0]}-{EARLY[1]}) minus late (last {LATE_LAST} "
              "steps), nats"]
    lines += [f"{r.condition:>10}  {r.mean:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]"
              for r in diff.itertuples()]
    acc = accuracy(run)
    lines += _grading_lines(run)
    if not acc.empty:
        lines += ["", "## accuracy (mean over prompts, 95% CI)"]
        lines += [f"{r.condition:>10}  {r.mean:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]"
                  for r in acc.itertuples()]
    return "\n".join(lines)


def _grading_lines(run: Run) -> list[str]:
    warning = ungraded_warning(run.trajectories)
    return ["", warning] if warning else []


def _header(run: Run, *extra: str) -> str:
    """The first line of every summary; `extra` fields follow the model name."""
    config = run.config
    return (f"# {run.command}  model={config['model_info']['name']}  "
            + "".join(f"{field}  " for field in extra)
            + f"placement={config['placement']}  law={config['law']}  "
            f"prompts={run.trajectories['prompt_id'].nunique()}  samples={config['samples']}")


def describe_attention(run: Run, full: bool = False) -> str:
    from rsp_probe.analysis.attention import layer_summary, top_heads

    lines = [_header(run), "", "## heads absorbing the most RSP mass at step 1"]
    for r in top_heads(run).itertuples():
        lines.append(f"{r.condition:>6}  layer {r.layer:>2} head {r.head:>2}  {r.value:.3f}")
    from rsp_probe.analysis.attention import head_averaged

    masses = head_averaged(run)
    lines += ["", f"## mass on the RSP by layer, layer -1 = all ({WINDOW_TITLE})"]
    for condition, rows in natural_groups(summarise_windows(masses, by=("condition", "layer")),
                                          "condition"):
        lines += [f"### {condition}", wide_table(rows, row="layer", column="window")]
    summary = layer_summary(run)
    for condition, rows in natural_groups(summary, "condition"):
        lines += ["", f"## {condition}: mass on the RSP, averaged over heads, by layer "
                  "(layer -1 = all layers), 95% CI over prompts",
                  wide_table(shown(rows, full), row="layer")]
    lines += _fit_lines(run) + _budget_lines(run)
    return "\n".join(lines)


def _budget_lines(run: Run) -> list[str]:
    from rsp_probe.analysis.budget import dilution_shares, has_budget

    if not has_budget(run):
        return []
    lines = ["", "## the fall of the RSP mass since step 1: dilution (more keys) vs "
             "suppression (a falling advantage delta_t), layer -1 = all. Logit average: mean "
             "over heads and trajectories of the logit change, cells of mass exactly 0 or 1 "
             "(infinite logit) left out and counted. Pooled mass (theory.budget.pooled_split): "
             "every cell, zeros as 0, in mass units, 95% prompt-bootstrap interval; rises = "
             "cells whose mass rose"]
    for r in dilution_shares(run).itertuples():
        lines.append(
            f"{r.condition:>6} layer {r.layer:>2} step {r.step:>3}: logit change "
            f"{r.change:+.3f} = dilution {r.dilution:+.3f} + suppression {r.suppression:+.3f}, "
            f"dilution share {r.dilution_share:.2f} ({r.n_left_out} of {r.n_cells} cells "
            f"left out); pooled mass change {r.pooled_total:+.4f} = dilution "
            f"{r.pooled_dilution:+.4f} + suppression {r.pooled_suppression:+.4f}, dilution "
            f"share {r.pooled_dilution_share:.2f} [{r.pooled_share_low:.2f}, "
            f"{r.pooled_share_high:.2f}]; mass 0 at step 1: {r.zero_1}, at step {r.step}: "
            f"{r.zero_s}; rises {r.rises}")
    return lines


def _fit_lines(run: Run) -> list[str]:
    from rsp_probe.analysis.attention import saved_or_fitted

    if not run.has(DILUTION_FILE):
        return []
    lines = ["", "## the dilution law m_t = k e^delta / (k e^delta + n_i + t - 1), one delta "
             "per layer fitted jointly to every trajectory with its own prompt length n_i, "
             "95% prompt-bootstrap interval; a description of the curves, not a test of the "
             "law (the calibrated test: `rsp-probe theory`)"]
    for condition, entry in saved_or_fitted(run).items():
        for layer, fit in entry["layers"].items():
            if fit.get("delta") is None:
                lines.append(f"{condition} layer {layer:>2}: no fit ({fit['error']})")
                continue
            low, high = fit["ci"]
            lines.append(f"{condition} layer {layer:>2} (k={entry['k']}, n_i "
                         f"{entry['n_min']:.0f}-{entry['n_max']:.0f}, "
                         f"{fit['n_trajectories']} trajectories): delta={fit['delta']:.3f} "
                         f"[{low:.3f}, {high:.3f}], rmse {fit['rmse']:.4f}")
    return lines


def influence_summary(run: Run) -> pd.DataFrame:
    frame = probe_frame(run, INFLUENCE_PROBES)
    return summarise_by_step(frame[frame["condition"] != "base"])


def describe_influence(run: Run, full: bool = False) -> str:
    summary = influence_summary(run)
    lines = [_header(run) + "  (teacher-forced along each prompt's greedy baseline)"]
    units = {"kl": "KL(p_rsp || p_base), nats", "tv": "total variation",
             "entropy_delta": "H(p_rsp) - H(p_base), nats", "top1_agree": "top-1 agreement"}
    frame = probe_frame(run, INFLUENCE_PROBES)
    frame = frame[frame["condition"] != "base"]
    for probe in INFLUENCE_PROBES:
        lines += window_lines(frame[frame["probe"] == probe], units[probe], digits=4)
    for probe in INFLUENCE_PROBES:
        lines += ["", f"## {units[probe]} by step, 95% CI over prompts",
                  wide_table(shown(summary[summary["probe"] == probe], full), digits=4)]
    return "\n".join(lines)


def describe_branching(run: Run, full: bool = False) -> str:
    from rsp_probe.analysis.prefix_tree import summarise_branching

    frame = run.table(BRANCHING_FILE)
    summary = summarise_branching(frame)
    fraction = summary[summary["statistic"] == "distinct_prefix_fraction"].rename(
        columns={"value": "mean"})
    prefixes = frame[frame["record"] == "distinct_prefix_fraction"]
    lines = [_header(run) + f"  T={run.config['temperature']}"]
    # one row per prompt and step: the prompt's late window is its longest trajectory's end
    lines += window_lines(prefixes.assign(trajectory=prefixes["prompt_id"]),
                          "distinct prefixes / N", digits=2)
    lines += ["", "## distinct prefixes / N by step, 95% CI over prompts",
             wide_table(shown(fraction, full), digits=2), "",
             "## first divergence between pairs of trajectories"]
    for condition, rows in summary[summary["step"] == -1].groupby("condition"):
        stats = dict(zip(rows["statistic"], rows["value"]))
        lines.append(f"{condition:>12}  median step {stats['median_first_divergence']:.1f}, "
                     f"never diverged {stats['never_diverged_share']:.0%} of pairs")
    answers = frame[frame["record"] == "answers"].groupby("condition")
    strategies = distinct_strategies(run.trajectories)
    lines += ["", "## per prompt: distinct final answers, correct trajectories (means)"
              + (", distinct strategies" if strategies else "")]
    for condition, rows in answers:
        lines.append(f"{condition:>12}  {rows['value'].mean():.2f} distinct answers, "
                     f"{rows['count'].mean():.2f} correct of {run.config['samples']}"
                     + (f", {strategies[condition]:.2f} strategies" if strategies else ""))
    return "\n".join(lines + diversity_lines(run.trajectories) + _grading_lines(run))


def describe_passk(run: Run, full: bool = False) -> str:
    from rsp_probe.analysis.passk import default_pairs, paired_table

    table = run.table(PASSK_FILE)
    lines = [_header(run) + f"  T={run.config['temperature']}  n={run.config['samples']}", "",
             "## Pass@k, 95% CI over problems"]
    cells = table.assign(mean=table["pass_at_k"])
    lines.append(wide_table(cells, column="k"))
    lines += _grading_lines(run)
    lines += ["", "## accuracy and distinct answers per problem"]
    for r in table.drop_duplicates("condition").itertuples():
        lines.append(f"{r.condition:>12}  accuracy {r.accuracy:.3f}, "
                     f"{r.distinct_answers:.2f} distinct answers, "
                     f"{getattr(r, 'ungraded', 0)} ungraded")
    paired = paired_table(run, sorted(table["k"].unique()),
                          default_pairs(table["condition"].unique()))
    if not paired.empty:
        lines += ["", "## paired difference on the same problems, Pass@k(a) - Pass@k(b)"]
        pairs = paired.assign(condition=paired["a"] + " - " + paired["b"],
                              mean=paired["difference"])
        lines.append(wide_table(pairs, column="k"))
    return "\n".join(lines + diversity_lines(run.trajectories))


def describe(run: Run, full: bool = False) -> str:
    """The summary a command printed when it wrote `run` (`full`: every report step)."""
    from rsp_probe.registry import EXPERIMENTS

    experiment = EXPERIMENTS.entries().get(run.command)
    if experiment is None:
        return f"{run.path}: no summary for command {run.command!r}"
    first, _, rest = experiment.describe_run(run, full=full).partition("\n")
    note = few_prompts_note(run.trajectories["prompt_id"].nunique())
    return "\n".join([first, note, rest] if note else [first, rest])


FEW_PROMPTS = 10  # below this many prompts a bootstrap CI over prompts is only illustrative


def few_prompts_note(n_prompts: int) -> str | None:
    if n_prompts >= FEW_PROMPTS:
        return None
    return (f"note: {n_prompts} prompt{'s' if n_prompts != 1 else ''}: the 95% CIs over prompts "
            f"are illustrative only (they need {FEW_PROMPTS} or more to mean much)")


def _compared_header(run: Run, what: str) -> list[str]:
    return [_header(run) + f"  T={run.config['temperature']}  n={run.config['samples']}", "",
            what]


def _compared_cells(row: dict, table: pd.DataFrame, width: int) -> list[str]:
    """Condition, accuracy with its CI, pass@k and the teacher-forced KL at steps 1..3."""
    passk = [c for c in table.columns if c.startswith("pass@") and c[5:].isdigit()]
    return [f"{row['condition']:>{width}}", f"acc {row['accuracy']:.3f} "
            f"[{row['accuracy_lo']:.3f}, {row['accuracy_hi']:.3f}]",
            *(f"{c} {row[c]:.3f}" for c in passk),
            f"KL t1-3 {row['kl_step1']:.3g}/{row['kl_step2']:.3g}/{row['kl_step3']:.3g}"]


def describe_knockout(run: Run, full: bool = False) -> str:
    from rsp_probe.analysis.tables import KNOCKOUT_FILE

    table = run.table(KNOCKOUT_FILE)
    lines = _compared_header(
        run, "## each knockout against the full-RSP run and the baseline (same prompts, draws, "
        "seeds); accuracy with 95% CI over prompts; KL(p_full || p_knocked) teacher-forced "
        "along the full run; H = next-token entropy (nats) of the condition's own "
        "trajectories; first divergence = mean step among diverged trajectories; "
        "direct-only = only the newest query reads the RSP, indirect-only = only earlier "
        "positions do (sampled)")
    # runs written before the paths were sampled have KL-only path rows
    paths = (table["kind"] == "path") & table["accuracy"].isna()
    for r in table[~paths].to_dict("records"):
        lines.append("  ".join([
            *_compared_cells(r, table, 13), f"KL mean {r['kl_mean']:.3g}",
            f"H t1/mean {r.get('entropy_step1', float('nan')):.3g}/"
            f"{r.get('entropy_mean', float('nan')):.3g}",
            f"distinct/prompt {r['distinct_per_prompt']:.2f}",
            f"same as full {r['same_as_full']:.2f} (1st div {r['first_divergence_full']:.1f})",
            f"same as base {r['same_as_baseline']:.2f}"]))
    if paths.any():
        lines += ["", "## one path of the RSP kept, teacher-forced along the full run: "
                  "KL(p_full || p_path); direct-only = only the newest query reads the RSP, "
                  "indirect-only = only earlier positions do"]
        for r in table[paths].to_dict("records"):
            lines.append(f"{r['condition']:>14}  KL t1-3 {r['kl_step1']:.3g}/"
                         f"{r['kl_step2']:.3g}/{r['kl_step3']:.3g}  KL mean {r['kl_mean']:.3g}")
    return "\n".join(lines)


def describe_dose(run: Run, full: bool = False) -> str:
    from rsp_probe.analysis.stats import bootstrap_mean
    from rsp_probe.analysis.tables import DOSE_FILE, SCORE_SHIFT_FILE

    table = run.table(DOSE_FILE)
    lines = _compared_header(
        run, "## per dose against the baseline k0 (same prompts and seeds): accuracy with 95% "
        "CI over prompts; KL(p_dose || p_base) teacher-forced along the baseline; first "
        "divergence from the baseline twin (quartiles)")
    for r in table.to_dict("records"):
        lines.append("  ".join([
            *_compared_cells(r, table, 14), f"same as base {r['same_as_k0']:.2f}",
            "1st div p25/50/75 " + "/".join(f"{r[f'first_divergence_k0_p{q}']:.0f}"
                                            for q in (25, 50, 75))]))
    shifts = run.table(SCORE_SHIFT_FILE)
    slopes = shifts.drop_duplicates(["condition", "prompt_id", "step"])
    lines += ["", "## score-shift dose: slope of log KL(p_beta || p_blocked) on log m within "
              "each (prompt, step) cell (theory: 2), mean and 95% CI over cells"]
    for condition, cells in slopes.groupby("condition", sort=False):
        mean, lo, hi = bootstrap_mean(cells["cell_slope"].to_numpy())
        lines.append(f"{condition:>14}  slope {mean:.2f} [{lo:.2f}, {hi:.2f}]  "
                     f"({cells['cell_slope'].notna().sum()} cells)")
    return "\n".join(lines)
