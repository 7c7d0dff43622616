"""Claims that compare the runs with docs/theory.md, from the corrected statistics of
analysis/theory_stats.py: per-head weighted dilution fits judged at the one decisive
delta-AIC of analysis/windows.py (point fits: no bootstrap, so the recomputation stays
cheap), the step-1 delta from the identity's inversion per head, the within-cell per-head
KL/TV-against-mass slopes, the score-shift slope, the dilution/suppression split of the
attention budget at the end of the middle window, and the branching hazards' TV against
their simulated null. A run without what a family needs gives a NotMeasured entry, never a
number. Rendered into docs/theory.md. No torch."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from rsp_probe.analysis.budget import SHARE_STEP, budget_frame, has_budget
from rsp_probe.analysis.divergence import has_pair_overlaps
from rsp_probe.analysis.head_fits import head_fits
from rsp_probe.analysis.scaling import THEORY_SLOPES, within_cell_slopes
from rsp_probe.analysis.stats import bootstrap_indices, percentile_interval
from rsp_probe.analysis.theory_stats import DilutionStatistics, branching_statistics
from rsp_probe.analysis.windows import DELTA_AIC_DECISIVE, MIDDLE
from rsp_probe.claims.core import Claim, NotMeasured, claim_family
from rsp_probe.claims.measures import estimate
from rsp_probe.probes.names import ATTENTION_PROBE
from rsp_probe.runs import BRANCHING_FILE, SCORE_SHIFT_FILE, Run

# The claims read point fits (verdicts from the fitted delta-AIC) and the step-1 delta,
# whose prompt-bootstrap CI is a mean's and cheap; the fitted parameters' refit bootstrap
# (theory_stats.dilution_statistics) is the theory report's, too slow to recompute here.
CLAIM_FIT_N_BOOT = 0
SCALING_QUANTITIES = ("kl", "tv")


def _has_probe(run: Run, probe: str) -> bool:
    return bool((run.steps["probe"] == probe).any())


def _by_k(items, k_of) -> dict[int, list]:
    out: dict[int, list] = {}
    for item in items:
        out.setdefault(int(k_of(item)), []).append(item)
    return dict(sorted(out.items()))


@claim_family("dilution-fits", "Dilution law", runs=("attention",), document="theory")
def dilution_claims(runs: dict[str, Run]) -> Iterator[Claim | NotMeasured]:
    run = runs["attention"]
    fits = head_fits(run, n_boot=CLAIM_FIT_N_BOOT) if _has_probe(run, ATTENTION_PROBE) else []
    if not fits:
        yield NotMeasured("the dilution law (the attention run has no per-head RSP mass)")
        return
    verdicts = DilutionStatistics(fits, []).verdict_counts()
    by_k = _by_k(fits, lambda fit: fit.k)
    breakdown = ", ".join(
        f"k={k}: {sum(f.delta_aic.value > DELTA_AIC_DECISIVE for f in mine)}/{len(mine)}"
        for k, mine in by_k.items())
    yield Claim(
        id="theory.dilution.beaten", section="Dilution law", runs=("attention",),
        value=float(verdicts["beaten"]), n=len(fits),
        statistic=f"(condition, layer, head) fits, weighted by each step's standard error "
                  f"over prompts, on which the constant-delta law's AIC exceeds the best "
                  f"other law's by more than {DELTA_AIC_DECISIVE:g} (wins: below "
                  f"-{DELTA_AIC_DECISIVE:g}); point fits",
        template="The constant-delta dilution law is decisively beaten (ΔAIC > {threshold:g}) "
                 "in {value:.0f} of {n} heads ({breakdown}), decisively better than every "
                 "other law in {wins} and undecided in {undecided}.",
        fields={"threshold": DELTA_AIC_DECISIVE, "breakdown": breakdown,
                "wins": verdicts["wins"], "undecided": verdicts["undecided"]})
    for k, mine in by_k.items():
        yield _step1_claim(k, mine)


def _step1_claim(k: int, fits) -> Claim:
    values = np.array([fit.delta_step1.value for fit in fits])
    above = sum(fit.delta_step1.ci_low > 0 for fit in fits)
    below = sum(fit.delta_step1.ci_high < 0 for fit in fits)
    return Claim(
        id=f"theory.delta_step1.k{k}", section="Dilution law", runs=("attention",),
        value=float(np.median(values)), n=len(fits),
        statistic="per head: the step-1 RSP logit advantage from inverting the exact "
                  "identity, mean over prompts with a prompt-bootstrap CI; median, range and "
                  "CI signs over heads",
        template="k={k}: the step-1 RSP logit advantage δ₁ (the identity inverted, per head) "
                 "has median {value:+.2f} over {n} heads (range {low:+.2f} to {high:+.2f}); "
                 "its 95% CI lies above 0 in {above} heads and below 0 in {below}.",
        fields={"k": k, "low": float(values.min()), "high": float(values.max()),
                "above": int(above), "below": int(below)})


@claim_family("scaling", "Influence against mass", runs=("influence",), document="theory")
def scaling_claims(runs: dict[str, Run]) -> Iterator[Claim | NotMeasured]:
    run = runs["influence"]
    for quantity in SCALING_QUANTITIES:
        if not (_has_probe(run, ATTENTION_PROBE) and _has_probe(run, quantity)):
            yield NotMeasured(f"the {quantity.upper()} slope (the influence run lacks "
                              f"per-head mass or {quantity})")
            continue
        theory = THEORY_SLOPES[quantity]
        slopes = [s for s in within_cell_slopes(run, quantity)
                  if np.isfinite(s.ci_low) and np.isfinite(s.ci_high)]
        for condition in sorted({s.condition for s in slopes}):
            mine = [s for s in slopes if s.condition == condition]
            yield Claim(
                id=f"theory.slope.{quantity}.{condition}", section="Influence against mass",
                runs=("influence",), value=float(sum(s.consistent for s in mine)), n=len(mine),
                statistic=f"per (layer, head): OLS slope of log {quantity.upper()} on log "
                          "head mass within (prompt, step) cells, prompt-bootstrap CI; heads "
                          "whose CI contains the first-order theory's slope",
                template="{condition}, {name} against one head's RSP mass within (prompt, "
                         "step) cells: the 95% CI of the slope contains the theory's "
                         "{theory:g} in {value:.0f} of {n} heads (below it in {below}, above "
                         "it in {above}); median slope {median:.2f}; the head with the most "
                         "mass (layer {layer}, head {head}): {top:.2f}, 95% CI [{top_low:.2f}, "
                         "{top_high:.2f}].",
                fields={"condition": condition, "name": quantity.upper(), "theory": theory,
                        "below": sum(s.ci_high < theory for s in mine),
                        "above": sum(s.ci_low > theory for s in mine),
                        "median": float(np.median([s.slope for s in mine])),
                        **_top_head(mine)})


def _top_head(slopes) -> dict:
    top = max(slopes, key=lambda s: s.mean_mass)
    return {"layer": top.layer, "head": top.head, "top": top.slope, "top_low": top.ci_low,
            "top_high": top.ci_high}


@claim_family("score-shift", "Influence against mass", runs=("dose",), document="theory")
def score_shift_claims(runs: dict[str, Run]) -> Iterator[Claim | NotMeasured]:
    run = runs["dose"]
    if not run.has(SCORE_SHIFT_FILE):
        yield NotMeasured("the score-shift slope (the dose run has no score-shift table)")
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
def budget_claims(runs: dict[str, Run]) -> Iterator[Claim | NotMeasured]:
    run = runs["attention"]
    if not has_budget(run):
        yield NotMeasured("the dilution/suppression split (the attention run has no "
                          "budget probes)")
        return
    frame = budget_frame(run)
    frame["prompt_id"] = frame["trajectory"].map(run.trajectories.set_index("id")["prompt_id"])
    for _, group in frame.groupby("condition"):
        step = min(SHARE_STEP, int(group["step"].max()))  # the middle window's end
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
            statistic=f"at step {step} (the end of the middle window, steps {MIDDLE[0]}-"
                      f"{MIDDLE[1]}, or the last step reached): mean over (trajectory, "
                      "layer, head) cells of the dilution part of the change in logit(m) "
                      "since step 1, divided by the mean change; prompt-bootstrap CI",
            template="k={k}, end of the middle window (step {step}): dilution accounts for "
                     "{value:.2f} of the fall in logit(m) since step 1 (suppression for the "
                     "rest), 95% CI [{ci_low:.2f}, {ci_high:.2f}] ({n} prompts).",
            fields={"k": k, "step": step})


@claim_family("branching-hazards", "Branching hazards", runs=("branching",), document="theory")
def branching_claims(runs: dict[str, Run]) -> Iterator[Claim | NotMeasured]:
    run = runs["branching"]
    if not run.has(BRANCHING_FILE):
        yield NotMeasured("the branching hazards (the branching run has no divergence table)")
        return
    exact = has_pair_overlaps(run)
    for condition, result in branching_statistics(run).items():
        if "error" in result:
            yield NotMeasured(f"the greedy hazard of {condition} ({result['error']})")
        elif result["model"] == "greedy":
            yield _hazard_claim(condition, result, "greedy hazard (margin < c·mass, c = "
                                f"{result['c']:.3g} fitted to the same pairs)")
        elif not exact:  # the 1 - sqrt(C_a C_b) bound holds for any two samples: no test
            yield NotMeasured(f"the exact collision hazard of {condition} (the branching "
                              "run has no pair overlaps)")
        else:
            yield _hazard_claim(condition, result, "exact collision hazard (sum p_a p_b "
                                "along each pair's shared prefix, teacher-forced)")


def _hazard_claim(condition: str, result: dict, model: str) -> Claim:
    null = result["null"]
    return Claim(
        id=f"theory.hazard.{result['model']}.{condition}", section="Branching hazards",
        runs=("branching",), value=float(result["tv"]), n=int(result["n_pairs"]),
        statistic="total variation between the observed first-divergence distribution of "
                  "pairs (never diverged as its last entry) and the hazard's prediction; "
                  "p: share of multinomial samples of n pairs from the prediction with a TV "
                  "at least as large (pairs of one prompt share trajectories but are drawn "
                  "as independent, so the null is too narrow: a small p is a weaker "
                  "rejection than it looks)",
        template="{condition}: the {model} is {value:.3f} in total variation from the "
                 "observed first divergences of {n} pairs; a correct prediction gives "
                 "{null_q95:.3f} or less 95% of the time (p = {p:.3f}); never diverged "
                 "{observed:.2f} observed, {predicted:.2f} predicted.",
        fields={"condition": condition, "model": model, "null_q95": null["null_q95"],
                "p": null["p_value"], "observed": result["never_observed"],
                "predicted": result["never_predicted"]})
