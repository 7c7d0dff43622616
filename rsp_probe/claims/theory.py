"""Claims that compare the runs with docs/theory.md: the dilution law against the other laws
(at the one decisive delta-AIC of analysis/windows.py), the KL/TV-against-mass slopes, the
score-shift slope, the dilution/suppression split of the attention budget, and the greedy
branching hazard's fit. Rendered into docs/theory.md. No torch."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from rsp_probe.analysis.attention import ALL_LAYERS, dilution_fits, step_means
from rsp_probe.analysis.budget import SHARE_STEP, budget_frame, has_budget
from rsp_probe.analysis.divergence import divergence_counts, greedy_prediction
from rsp_probe.analysis.stats import bootstrap_indices, percentile_interval
from rsp_probe.analysis.windows import DELTA_AIC_DECISIVE
from rsp_probe.claims.core import Claim, claim_family
from rsp_probe.claims.measures import estimate
from rsp_probe.runs import BRANCHING_FILE, DILUTION_FILE, SCORE_SHIFT_FILE, Run
from rsp_probe.theory import loglog_slope


@claim_family("dilution-fits", "Dilution law", runs=("attention",), document="theory")
def dilution_claims(runs: dict[str, Run]) -> Iterator[Claim]:
    run = runs["attention"]
    fits = run.json(DILUTION_FILE) if (run.path / DILUTION_FILE).exists() else dilution_fits(run)
    beaten = total = 0
    for condition, entry in fits.items():
        for layer, result in entry["layers"].items():
            if not result.get("fits") or int(layer) == ALL_LAYERS:
                continue  # the all-layers curve averages the others: no extra evidence
            by_model = {fit["model"]: fit for fit in result["fits"]}
            best = result["fits"][0]
            gap = by_model["dilution"]["aic"] - best["aic"]
            total += 1
            beaten += gap > DELTA_AIC_DECISIVE
            yield Claim(
                id=f"theory.dilution.{condition}.layer{layer}", section="Dilution law",
                runs=("attention",), value=gap,
                statistic="AIC of the constant-delta dilution law minus the best law's, fitted "
                          "to the layer's head-averaged mean mass curve",
                template="{condition}, layer {layer}: best law {best}; the dilution law's AIC "
                         "is {value:.1f} above it ({verdict}).",
                fields={"condition": condition, "layer": layer, "best": best["model"],
                        "verdict": "decisively worse" if gap > DELTA_AIC_DECISIVE
                        else "not decisively worse"})
    yield Claim(
        id="theory.dilution.beaten", section="Dilution law", runs=("attention",),
        value=float(beaten), n=total,
        statistic=f"layer curves (per condition, all-layers average excluded) on which the "
                  f"dilution law's AIC exceeds the best law's by more than {DELTA_AIC_DECISIVE:g}",
        template="The dilution law is decisively beaten (ΔAIC > {threshold:g}) on {value:.0f} "
                 "of {n} layer curves.", fields={"threshold": DELTA_AIC_DECISIVE})


@claim_family("scaling", "Influence against mass", runs=("influence",), document="theory")
def scaling_claims(runs: dict[str, Run]) -> Iterator[Claim]:
    run = runs["influence"]
    wide = run.steps[run.steps["probe"].isin(["kl", "tv"])].pivot_table(
        index=["trajectory", "step"], columns="probe", values="value", observed=True)
    mass = step_means(run).rename("mass").reset_index()
    wide = wide.reset_index().merge(mass, on=["trajectory", "step"])
    wide["prompt_id"] = wide["trajectory"].map(run.trajectories.set_index("id")["prompt_id"])
    for quantity, theory in (("kl", 2.0), ("tv", 1.0)):
        fit = loglog_slope(wide["mass"].to_numpy(), wide[quantity].to_numpy(),
                           groups=wide["prompt_id"].to_numpy())
        holds = fit.ci_low <= theory <= fit.ci_high
        yield Claim(
            id=f"theory.slope.{quantity}", section="Influence against mass", runs=("influence",),
            value=fit.slope, ci_low=fit.ci_low, ci_high=fit.ci_high, n=fit.n_points,
            statistic=f"OLS slope of log {quantity.upper()} on log mass (layer- and "
                      "head-averaged) over every (trajectory, step), prompt-bootstrap CI",
            template="{name} against RSP mass: log-log slope {value:.2f}, 95% CI [{ci_low:.2f}, "
                     "{ci_high:.2f}] over {n} points; the first-order theory's {theory:g} is "
                     "{verdict}.",
            fields={"name": quantity.upper(), "theory": theory,
                    "verdict": "inside the CI" if holds else "outside the CI (rejected)"})


@claim_family("score-shift", "Influence against mass", runs=("dose",), document="theory")
def score_shift_claims(runs: dict[str, Run]) -> Iterator[Claim]:
    run = runs["dose"]
    if not (run.path / SCORE_SHIFT_FILE).exists():
        return
    table = run.table(SCORE_SHIFT_FILE)
    cells = table.drop_duplicates(["condition", "prompt_id", "step"])
    per_prompt = cells.groupby("prompt_id")["cell_slope"].mean()
    yield Claim(
        id="theory.slope.score_shift", section="Influence against mass", runs=("dose",),
        **estimate(per_prompt.to_numpy()),
        statistic="per (prompt, step) cell, the slope of log KL on log m over the score "
                  "shifts; mean per prompt, mean over prompts, bootstrap CI",
        template="Score-shift dose (m varied at a fixed context): slope of log KL on log m "
                 "{value:.2f}, 95% CI [{ci_low:.2f}, {ci_high:.2f}] ({n} prompts; theory "
                 "2).")


@claim_family("budget", "Dilution or suppression", runs=("attention",), document="theory")
def budget_claims(runs: dict[str, Run]) -> Iterator[Claim]:
    run = runs["attention"]
    if not has_budget(run):
        return
    frame = budget_frame(run)
    frame["prompt_id"] = frame["trajectory"].map(run.trajectories.set_index("id")["prompt_id"])
    for _, group in frame.groupby("condition"):
        step = min(SHARE_STEP, int(group["step"].max()))
        at = group[(group["step"] == step) & np.isfinite(group["total"])]
        sums = at.groupby("prompt_id")[["dilution", "total"]].agg(["sum", "count"])
        dilution, total = sums[("dilution", "sum")].to_numpy(), sums[("total", "sum")].to_numpy()
        share = dilution.sum() / total.sum()
        idx = bootstrap_indices(len(dilution))
        low, high = percentile_interval(dilution[idx].sum(axis=1) / total[idx].sum(axis=1))
        k = int(group["k"].iloc[0])
        yield Claim(
            id=f"theory.budget.dilution_share.k{k}", section="Dilution or suppression",
            runs=("attention",), value=share, ci_low=low, ci_high=high, n=len(dilution),
            statistic=f"at step {step}: mean over (trajectory, layer, head) cells of the "
                      "dilution part of the change in logit(m) since step 1, divided by the "
                      "mean change; prompt-bootstrap CI",
            template="k={k}, step {step}: dilution accounts for {value:.2f} of the fall in "
                     "logit(m) since step 1 (suppression for the rest), 95% CI [{ci_low:.2f}, "
                     "{ci_high:.2f}] ({n} prompts).", fields={"k": k, "step": step})


@claim_family("greedy-hazard", "Branching hazards", runs=("branching",), document="theory")
def greedy_hazard_claims(runs: dict[str, Run]) -> Iterator[Claim]:
    run = runs["branching"]
    frame = run.table(BRANCHING_FILE)
    horizon = int(frame.loc[frame["record"] == "distinct_prefix_fraction", "step"].max())
    settings = run.trajectories.groupby("condition")[["temperature", "rsp_tokens"]].first()
    for condition, row in settings.iterrows():
        if row["temperature"] != 0 or row["rsp_tokens"] == 0:
            continue
        rows = frame[(frame["condition"] == condition) & (frame["record"] == "first_divergence")]
        try:
            fit = greedy_prediction(run, condition, divergence_counts(rows, horizon))
        except ValueError:
            continue
        yield Claim(
            id=f"theory.greedy_hazard.{condition}", section="Branching hazards",
            runs=("branching",), value=fit.tv,
            statistic="total variation between the observed first-divergence distribution "
                      "of greedy pairs and the margin < c*mass hazard's, c fitted to it",
            template="{condition}: the greedy hazard (margin < c·mass, c = {c:.3g} fitted to the "
                     "same pairs) is {value:.3f} in total variation from the observed first "
                     "divergences; never diverged {observed:.2f} observed, {predicted:.2f} "
                     "predicted.",
            fields={"condition": condition, "c": fit.c, "observed": fit.observed.never,
                    "predicted": fit.predicted.never})
