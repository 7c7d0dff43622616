"""Claims that compare the runs with docs/theory.md, from analysis/theory_stats.py: the
per-head excess-exponent test of the dilution law with its calibration (size and power by
simulation at each head's design and noise), the step-1 delta from the identity (a
measurement), the within-cell per-head KL/TV-against-mass slopes, the score-shift slope,
the pooled dilution/suppression split with its calibration, the branching hazards' TV
against their simulated null, and the positions-only control against the RSP. A comparison
that does not reach calibrated size and power is called a consistency check, never a test.
A run without what a family needs gives a NotMeasured entry, never a number. Rendered into
docs/theory.md. No torch."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from rsp_probe.analysis.budget import has_budget
from rsp_probe.analysis.divergence import has_pair_overlaps
from rsp_probe.analysis.scaling import THEORY_SLOPES, influence_points, within_cell_slopes
from rsp_probe.analysis.scaling_calibration import N_REPLICATES as SLOPE_REPLICATES
from rsp_probe.analysis.scaling_calibration import calibrate_slope
from rsp_probe.analysis.tables import BRANCHING_FILE, SCORE_SHIFT_FILE
from rsp_probe.analysis.theory_stats import (
    branching_statistics,
    dilution_statistics,
    split_statistics,
)
from rsp_probe.analysis.windows import MIDDLE
from rsp_probe.claims.core import Claim, NotMeasured, claim_family
from rsp_probe.claims.measures import estimate, paired, verdict
from rsp_probe.probes.names import ATTENTION_PROBE
from rsp_probe.runs import Run
from rsp_probe.theory.calibration import (
    ALTERNATIVES,
    MIN_ACCEPTANCE,
    MIN_POWER,
    N_REPLICATES,
    NULL,
)

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
    heads = dilution_statistics(run) if _has_probe(run, ATTENTION_PROBE) else []
    if not heads:
        yield NotMeasured("the dilution law (the attention run has no per-head RSP mass)")
        return
    for k, mine in _by_k(heads, lambda head: head.k).items():
        yield _exponent_claim(k, mine)
        yield _step1_claim(k, [head for head in mine if np.isfinite(head.delta_step1.value)])


def _exponent_claim(k: int, heads) -> Claim:
    faster = sum(h.exponent.verdict == "faster than dilution" for h in heads)
    slower = sum(h.exponent.verdict == "slower than dilution" for h in heads)
    rejected = faster + slower  # a head without a finite interval is not measurable
    sizes = [h.rates[NULL] for h in heads if h.rates]
    powers = {name: float(np.median([h.rates[name] for h in heads if h.rates]))
              for name in ALTERNATIVES}
    tests = sum(h.kind == "test" for h in heads)
    zero = sum(h.exponent.n_zero for h in heads)
    cells = zero + sum(h.exponent.n_points for h in heads)
    return Claim(
        id=f"theory.dilution.exponent.k{k}", section="Dilution law", runs=("attention",),
        value=float(rejected), n=len(heads),
        statistic="per (layer, head): b = 1 - alpha, the slope of delta_t (the identity "
                  "inverted at each step, each trajectory with its own n) on log(n + t - 1) "
                  "within trajectories, cluster-robust 95% CI over prompts; heads whose CI "
                  "excludes 0. Calibration: synthetic heads with each head's design and "
                  f"noise, {N_REPLICATES} replicates per scenario",
        template="k={k}: the dilution law (δ_t constant along each trajectory) is rejected "
                 "in {value:.0f} of {n} heads (δ_t falls faster than dilution allows in "
                 "{faster}, slower in {slower}; median b = {median:+.2f}, 0 under the law). "
                 "Calibrated at each head's own design and noise, synthetic heads that "
                 "follow the law are accepted in {size_low:.2f} to {size_high:.2f} of "
                 "replicates, and rejected (median over heads) under constant mass in "
                 "{p_const:.2f}, a power law with α=0.5 in {p_half:.2f}, α=2 in "
                 "{p_two:.2f} and exponential forgetting in {p_exp:.2f}: the comparison "
                 "reaches power 0.8 against all four in {tests} heads, and is a consistency "
                 "check, not a test, in the other {checks}. {zero} of {cells} cells have "
                 "mass exactly 0 (no finite δ_t) and are left out.",
        fields={"k": k, "faster": faster, "slower": slower,
                "median": float(np.median([h.exponent.excess for h in heads])),
                "size_low": min(sizes, default=np.nan), "size_high": max(sizes, default=np.nan),
                "p_const": powers["constant mass"], "p_half": powers["power law a=0.5"],
                "p_two": powers["power law a=2"], "p_exp": powers["exponential forgetting"],
                "tests": tests, "checks": len(heads) - tests, "zero": zero, "cells": cells})


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
        template="k={k}: the step-1 RSP logit advantage δ₁ (the identity inverted, per head; "
                 "a measurement, not a test) has median {value:+.2f} over {n} heads (range "
                 "{low:+.2f} to {high:+.2f}); its 95% CI lies above 0 in {above} heads and "
                 "below 0 in {below}.",
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
        points = influence_points(run, quantity)
        for condition in sorted({s.condition for s in slopes}):
            mine = [s for s in slopes if s.condition == condition]
            yield Claim(
                id=f"theory.slope.{quantity}.{condition}", section="Influence against mass",
                runs=("influence",), value=float(sum(s.consistent for s in mine)), n=len(mine),
                statistic=f"per (layer, head): OLS slope of log {quantity.upper()} on log "
                          "head mass within (prompt, step) cells, prompt-bootstrap CI; heads "
                          "whose CI contains the first-order theory's slope",
                template="{condition}, {name} against one head's RSP mass within (prompt, "
                         "step) cells: the 95% CI of the slope contains the first-order "
                         "theory's {theory:g} in {value:.0f} of {n} heads (below it in "
                         "{below}, above it in {above}); median slope {median:.2f}; the head "
                         "with the most mass (layer {layer}, head {head}): {top:.2f}, 95% CI "
                         "[{top_low:.2f}, {top_high:.2f}]. Calibrated at that head's own "
                         "masses and noise ({reps} replicates): a slope of {theory:g} is "
                         "accepted in {size:.2f}, and {powers}: {kind}.",
                fields={"condition": condition, "name": quantity.upper(), "theory": theory,
                        "below": sum(s.ci_high < theory for s in mine),
                        "above": sum(s.ci_low > theory for s in mine),
                        "median": float(np.median([s.slope for s in mine])),
                        **_top_head(mine, points, theory)})


def _top_head(slopes, points, theory: float) -> dict:
    """The head with the most mass, and the calibration of its comparison."""
    top = max(slopes, key=lambda s: s.mean_mass)
    mine = points[(points["condition"] == top.condition) & (points["layer"] == top.layer)
                  & (points["head"] == top.head)]
    rates = calibrate_slope(mine, theory)
    null, *alternatives = rates
    powers = ", ".join(f"{name} rejected in {rates[name]:.2f}" for name in alternatives)
    passed = (rates[null] >= MIN_ACCEPTANCE
              and all(rates[name] >= MIN_POWER for name in alternatives))
    return {"layer": top.layer, "head": top.head, "top": top.slope, "top_low": top.ci_low,
            "top_high": top.ci_high, "reps": SLOPE_REPLICATES, "size": rates[null],
            "powers": powers, "kind": "a test" if passed else "a consistency check"}


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
                 "{value:.2f}, 95% CI [{ci_low:.2f}, {ci_high:.2f}] ({n} prompts). A "
                 "second-order Taylor expansion gives 2 for any smooth model at small m, so "
                 "this is a consistency check of the measurement, not a test of the theory.")


@claim_family("budget", "Dilution or suppression", runs=("attention",), document="theory")
def budget_claims(runs: dict[str, Run]) -> Iterator[Claim | NotMeasured]:
    run = runs["attention"]
    if not has_budget(run):
        yield NotMeasured("the dilution/suppression split (the attention run has no "
                          "budget probes)")
        return
    for k, split in split_statistics(run).items():
        rates = split["calibration"]
        value, low, high = split["suppression"]
        yield Claim(
            id=f"theory.budget.split.k{k}", section="Dilution or suppression",
            runs=("attention",), value=value, ci_low=low, ci_high=high,
            n=split["n_clusters"],
            statistic=f"over (trajectory, layer, head) cells that reached step {split['step']} "
                      f"(the end of the middle window, steps {MIDDLE[0]}-{MIDDLE[1]}, or the "
                      "last step reached): the change of the pooled (mean) RSP mass since step "
                      "1, split exactly into dilution (each cell keeping its step-1 advantage, "
                      "with its own n) and suppression (the rest); value: the suppression "
                      "part; CIs: t x cluster-bootstrap SE over prompts. Calibration: "
                      f"synthetic cells with this design and each head's noise, {N_REPLICATES} "
                      "replicates per scenario",
            template="k={k}, step 1 to step {step}: the pooled RSP mass changes by {total} "
                     "(fractions of attention); dilution accounts for {dilution} and "
                     "suppression for {value:+.3f}, 95% CI [{ci_low:+.3f}, {ci_high:+.3f}] "
                     "(dilution share {share}; {n} prompts, {cells} cells, of which {zero_1} "
                     "have mass exactly 0 at step 1 and {zero_s} at step {step}, counted as "
                     "0; the mass rose in {rises}). Calibrated at this design, 'no "
                     "suppression' is accepted in {size:.2f} of law-following replicates and "
                     "rejected in at most {power:.2f} under any named alternative: a "
                     "consistency check, not a test, of how fast the mass should fall.",
            fields={"k": k, "step": split["step"], "total": _signed(split["total"]),
                    "dilution": _signed(split["dilution"]),
                    "share": _signed(split["dilution_share"], "{:.2f}"),
                    "cells": split["n_cells"], "zero_1": split["zero_1"],
                    "zero_s": split["zero_s"], "rises": split["rises"],
                    "size": rates.get(NULL, np.nan),
                    "power": max((rates[a] for a in ALTERNATIVES), default=np.nan)})


def _signed(triple, fmt: str = "{:+.3f}") -> str:
    value, low, high = triple
    return f"{fmt.format(value)} [{fmt.format(low)}, {fmt.format(high)}]"


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
                                f"{result['c']:.3g} fitted to the same pairs; a consistency "
                                "check: power not calibrated)")
        elif not exact:  # the 1 - sqrt(C_a C_b) bound holds for any two samples: no test
            yield NotMeasured(f"the exact collision hazard of {condition} (the branching "
                              "run has no pair overlaps)")
        else:
            yield _hazard_claim(condition, result, "exact collision hazard (sum p_a p_b "
                                "along each pair's shared prefix, teacher-forced; it compares "
                                "the sampler with its own sampling probabilities, so it is a "
                                "consistency check of the sampler, not a test of the theory)")


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


POSITIONS_MEASURES = {"early_entropy": ("entropy at steps 1-3", "{:+.3f} nats"),
                      "greedy_accuracy": ("greedy accuracy", "{:+.3f}"),
                      "accuracy": ("sampled accuracy", "{:+.3f}")}


@claim_family("positions-only", "The RSP against its positions", runs=("compare-prompts",),
              document="theory")
def positions_only_claims(runs: dict[str, Run]) -> Iterator[Claim | NotMeasured]:
    """The positions-only control (the k slots are there, every query is masked from them)
    against the RSP on the same prompts and seeds: what the RSP's content adds beyond the
    shift of positions it causes (docs/theory.md, section 3)."""
    from rsp_probe.analysis.compare_prompts import prompt_measures

    run = runs["compare-prompts"]
    per_prompt = prompt_measures(run).set_index(["arm", "prompt_id"])
    arms = set(per_prompt.index.get_level_values(0))
    if not {"positions-only", "rsp"} <= arms:
        yield NotMeasured("the positions-only control (the run lacks the positions-only or "
                          "rsp arm)")
        return
    for measure, (what, _) in POSITIONS_MEASURES.items():
        stats = paired(per_prompt[measure], "positions-only", "rsp")
        yield Claim(
            id=f"theory.positions_only.{measure}", section="The RSP against its positions",
            runs=("compare-prompts",), **stats,
            statistic=f"per prompt, {what} of the positions-only control minus the RSP's "
                      "(same prompts and seeds); mean over prompts, prompt-bootstrap 95% CI",
            template="Positions-only control (slots kept, attention to them masked) minus "
                     "the RSP, {what}: {value:+.3f}, paired 95% CI [{ci_low:+.3f}, "
                     "{ci_high:+.3f}] ({n} prompts; {verdict}).",
            fields={"what": what,
                    "verdict": verdict(stats["ci_low"], stats["ci_high"], "higher without "
                                       "the RSP's content", "lower without the RSP's "
                                       "content", "no detectable difference")})
