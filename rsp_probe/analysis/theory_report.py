"""`rsp-probe theory RUN...`: every comparison between measurement and docs/theory.md that the
given runs allow, as Markdown. No torch.

attention runs -> the dilution law against power law, sink and exponential (AIC, R^2);
influence runs -> log-log slopes of KL (theory: 2) and TV (theory: 1) against RSP mass;
branching runs -> predicted against observed first-divergence distributions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rsp_probe.analysis.attention import ALL_LAYERS, dilution_fits, step_means
from rsp_probe.analysis.divergence import (
    divergence_counts,
    greedy_prediction,
    temperature_prediction,
)
from rsp_probe.errors import UsageError
from rsp_probe.probes.names import COLLISION_PROBE
from rsp_probe.runs import BRANCHING_FILE, DILUTION_FILE, Run
from rsp_probe.theory import loglog_slope

BEGIN, END = "<!-- BEGIN GENERATED COMPARISON -->", "<!-- END GENERATED COMPARISON -->"


def dilution_section(run: Run) -> list[str]:
    path = run.path / DILUTION_FILE
    fits = run.json(DILUTION_FILE) if path.exists() else dilution_fits(run)
    lines = [f"### Dilution of RSP attention (`{run.id}`)", "",
             "| condition | layer | best law (AIC) | dilution delta ± se | R² dilution | "
             "R² best | ΔAIC dilution − best |", "|---|---|---|---|---|---|---|"]
    beaten, total = 0, 0
    for condition, entry in fits.items():
        for layer, result in entry["layers"].items():
            if not result.get("fits"):
                lines.append(f"| {condition} | {layer} | no fit: {result.get('error')} |||||")
                continue
            by_model = {fit["model"]: fit for fit in result["fits"]}
            best, dilution = result["fits"][0], by_model["dilution"]
            total += 1
            beaten += dilution["aic"] - best["aic"] > 2
            delta, se = dilution["params"]["delta"], dilution["stderr"].get("delta") or np.nan
            name = "all layers" if int(layer) == ALL_LAYERS else layer
            lines.append(f"| {condition} | {name} | {best['model']} | {delta:.2f} ± {se:.2f} | "
                         f"{dilution['r2']:.3f} | {best['r2']:.3f} | "
                         f"{dilution['aic'] - best['aic']:.1f} |")
    lines += ["", f"Verdict: the constant-delta dilution law is beaten by another law (ΔAIC > 2) "
              f"in {beaten} of {total} curves; "
              + ("it does not describe this model's decay." if beaten > total / 2 else
                 "it describes this model's decay as well as the alternatives.")]
    return lines


def mass_by_step(run: Run) -> pd.DataFrame:
    """Head- and layer-averaged RSP mass per (trajectory, step)."""
    return step_means(run).rename("mass").reset_index()


def scaling_section(run: Run) -> list[str]:
    frame = run.steps[run.steps["probe"].isin(["kl", "tv", "entropy_delta"])]
    wide = frame.pivot_table(index=["trajectory", "step"], columns="probe", values="value",
                             observed=True).reset_index()
    wide = wide.merge(mass_by_step(run), on=["trajectory", "step"])
    prompt = run.trajectories.set_index("id")["prompt_id"]
    wide["prompt_id"] = wide["trajectory"].map(prompt)
    lines = [f"### Influence against RSP mass (`{run.id}`)", "",
             "| quantity | theory slope | measured slope [95% CI] | points | verdict |",
             "|---|---|---|---|---|"]
    for quantity, theory, values in (("KL(p_rsp‖p_base)", 2.0, wide["kl"]),
                                     ("TV", 1.0, wide["tv"]),
                                     ("abs(entropy shift)", 1.0, wide["entropy_delta"].abs())):
        estimate = loglog_slope(wide["mass"].to_numpy(), values.to_numpy(),
                                groups=wide["prompt_id"].to_numpy())
        holds = estimate.ci_low <= theory <= estimate.ci_high
        lines.append(f"| {quantity} | {theory:.0f} | {estimate.slope:.2f} "
                     f"[{estimate.ci_low:.2f}, {estimate.ci_high:.2f}] | {estimate.n_points} | "
                     f"{'consistent' if holds else 'rejected'} |")
    return lines + ["", "Verdict: a slope whose 95% CI excludes the theory's value rejects the "
                    "first-order (TV, entropy) or second-order (KL) scaling, pooled over steps and "
                    "prompts."]


def branching_section(run: Run) -> list[str]:
    frame = run.table(BRANCHING_FILE)
    horizon = int(frame.loc[frame["record"] == "distinct_prefix_fraction", "step"].max())
    lines = [f"### First divergence, predicted against observed (`{run.id}`)", "",
             "| condition | hazard model | free parameters | TV(observed, predicted) | "
             "never diverged: observed / predicted |", "|---|---|---|---|---|"]
    has_collision = COLLISION_PROBE in set(run.steps["probe"].unique())
    temperature = run.trajectories.groupby("condition")["temperature"].first()
    k = run.trajectories.groupby("condition")["rsp_tokens"].first()
    for condition in temperature.index:
        if temperature[condition] == 0 and k[condition] > 0:
            rows = frame[(frame["condition"] == condition)
                         & (frame["record"] == "first_divergence")]
            try:
                fit = greedy_prediction(run, condition, divergence_counts(rows, horizon))
            except ValueError as err:
                lines.append(f"| {condition} | greedy margin < c·mass | - | no fit ({err}) | |")
                continue
            lines.append(f"| {condition} | greedy margin < c·mass | c = {fit.c:.3g} | "
                         f"{fit.tv:.3f} | {fit.observed.never:.2f} / {fit.predicted.never:.2f} |")
        elif has_collision:
            result = temperature_prediction(run, condition)
            lines.append(f"| {condition} | collision 1 − Σp² | none | {result['tv']:.3f} | "
                         f"{result['observed'].never:.2f} / {result['predicted'].never:.2f} |")
    return lines + ["", "Verdict: TV 0 is a perfect prediction, 1 a disjoint one. The greedy "
                    "row has one parameter (c) fitted to the same histogram; the collision rows "
                    "have none, so they are out-of-sample predictions."]


def theory_report(runs: list[Run]) -> str:
    """Each run's section, from the `theory` of the experiment that wrote it."""
    from rsp_probe.experiments.base import experiments, resolve

    sections = {name: e.theory for name, e in experiments().items() if e.theory is not None}
    parts = []
    for run in runs:
        if run.command in sections:
            parts.append("\n".join(resolve(sections[run.command])(run)))
    if not parts:
        return ("No comparison possible: give `rsp-probe attention`, `influence` or "
                "`branching` runs.")
    return "\n\n".join(parts)


def replace_generated(path, text: str, begin: str = BEGIN, end: str = END) -> None:
    """Write `text` between the begin/end markers of a Markdown file, leaving the rest."""
    from pathlib import Path

    head, tail = split_at_markers(path, begin, end)
    Path(path).write_text(f"{head}{begin}\n{text}\n{end}{tail}")


def split_at_markers(path, begin: str = BEGIN, end: str = END) -> tuple[str, str]:
    """The text before `begin` and after `end`; UsageError (one line) when the file cannot
    be read or lacks the markers, so `theory --report` can check before doing any work."""
    from pathlib import Path

    try:
        document = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise UsageError(f"{path}: cannot read the report ({reason})") from None
    if begin not in document or end not in document:
        raise UsageError(f"{path}: no {begin} ... {end} markers to replace")
    head, rest = document.split(begin, 1)
    _, tail = rest.split(end, 1)
    return head, tail
