"""`rsp-probe theory RUN...`: every comparison between measurement and docs/theory.md that the
given runs allow, as Markdown, formatted from analysis.theory_stats. No torch.

attention runs -> per head, the calibrated excess-exponent test of the dilution law (each
trajectory with its own n), the step-1 delta from the identity, and the pooled
dilution/suppression split with its calibration;
influence runs -> within-cell log-log slopes of KL (first order: 2), TV and
|entropy shift| (first order: 1) against one head's RSP mass;
branching runs -> predicted against observed first-divergence distributions, with a
simulated null for their TV distance.
"""

from __future__ import annotations

from rsp_probe.analysis.theory_stats import (
    branching_statistics,
    dilution_statistics,
    scaling_statistics,
    split_statistics,
)
from rsp_probe.errors import UsageError
from rsp_probe.runs import Run
from rsp_probe.theory.calibration import ALTERNATIVES, N_REPLICATES, NULL

BEGIN, END = "<!-- BEGIN GENERATED COMPARISON -->", "<!-- END GENERATED COMPARISON -->"
TOP_HEADS = 3  # heads per condition shown in the scaling table (largest mean mass)


def _ci(estimate, digits: int = 2) -> str:
    return (f"{estimate.value:.{digits}f} [{estimate.ci_low:.{digits}f}, "
            f"{estimate.ci_high:.{digits}f}]")


def dilution_section(run: Run) -> list[str]:
    heads = dilution_statistics(run)
    lines = [f"### Dilution of RSP attention, per head (`{run.id}`)", "",
             "Each trajectory with its own prompt length n: b = 1 - alpha is the slope of "
             "delta_t (the identity inverted at each step) on log(n + t - 1) within "
             "trajectories, 0 under the dilution law; cluster-robust 95% CI over prompts. "
             "Calibration: synthetic heads with this head's design and noise; size = share "
             "of law-following heads accepted, power = the smallest share of the named "
             "alternatives rejected (constant mass, power law a=0.5 and a=2, exponential "
             f"forgetting), over {N_REPLICATES} replicates each.", "",
             "| condition | layer | head | b [95% CI] | verdict | cells of mass 0 | "
             "δ₁ (identity) [95% CI] | noise σ | size | power | kind |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for head in heads:
        e, rates = head.exponent, head.rates
        power = min((rates[a] for a in ALTERNATIVES), default=float("nan"))
        lines.append(f"| {head.condition} | {head.layer} | {head.head} | {e.excess:.2f} "
                     f"[{e.ci_low:.2f}, {e.ci_high:.2f}] | {e.verdict} | {e.n_zero} of "
                     f"{e.n_zero + e.n_points} | {_ci(head.delta_step1)} | {head.sigma:.1f} | "
                     f"{rates.get(NULL, float('nan')):.2f} | {power:.2f} | {head.kind} |")
    rejected = sum(h.exponent.verdict.endswith("than dilution") for h in heads)
    tests = sum(h.kind == "test" for h in heads)
    lines += ["", f"Verdict: the law is rejected in {rejected} of {len(heads)} heads; the "
              f"comparison reaches size and power (a test) in {tests} of them and is a "
              "consistency check in the others."]
    return lines + [""] + split_section(run)


def split_section(run: Run) -> list[str]:
    """The pooled dilution/suppression split per k, with its calibration."""
    from rsp_probe.analysis.budget import has_budget

    if not has_budget(run):
        return []
    lines = [f"### Dilution or suppression, pooled over mass (`{run.id}`)", "",
             "| k | step | change of pooled mass [95% CI] | dilution | suppression | "
             "dilution share | cells (mass 0 at step 1 / at step s; rose) | size | power |",
             "|---|---|---|---|---|---|---|---|---|"]
    for k, split in split_statistics(run).items():
        rates = split["calibration"]
        power = min((rates[a] for a in ALTERNATIVES), default=float("nan"))
        cells = (f"{split['n_cells']} ({split['zero_1']} / {split['zero_s']}; "
                 f"{split['rises']})")
        lines.append(f"| {k} | {split['step']} | {_triple(split['total'])} | "
                     f"{_triple(split['dilution'])} | {_triple(split['suppression'])} | "
                     f"{_triple(split['dilution_share'])} | {cells} | "
                     f"{rates.get(NULL, float('nan')):.2f} | {power:.2f} |")
    return lines


def _triple(values, digits: int = 3) -> str:
    value, low, high = values
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def scaling_section(run: Run) -> list[str]:
    slopes = scaling_statistics(run)
    lines = [f"### Influence against one head's RSP mass, within (prompt, step) cells "
             f"(`{run.id}`)", "",
             "| quantity | condition | layer | head | mean mass | theory slope | "
             "slope [95% CI] | points | verdict |", "|---|---|---|---|---|---|---|---|---|"]
    shown: dict[tuple[str, str], int] = {}
    for s in slopes:
        key = (s.quantity, s.condition)
        shown[key] = shown.get(key, 0) + 1
        if shown[key] > TOP_HEADS:
            continue
        lines.append(f"| {s.quantity} | {s.condition} | {s.layer} | {s.head} | "
                     f"{s.mean_mass:.3f} | {s.theory:.0f} | {s.slope:.2f} [{s.ci_low:.2f}, "
                     f"{s.ci_high:.2f}] | {s.n_points} | "
                     f"{'consistent' if s.consistent else 'rejected'} |")
    consistent = sum(s.consistent for s in slopes)
    return lines + ["", f"Verdict: {consistent} of {len(slopes)} (quantity, condition, head) "
                    f"slopes have a 95% CI containing the theory's value (the {TOP_HEADS} heads "
                    "with the most mass per condition are shown). Slopes compare draws of one "
                    "prompt at one step, so differences between prompts and steps cannot fake "
                    "a slope. The claims (`rsp-probe claims`) calibrate the comparison at the "
                    "head with the most mass: size and power by simulation."]


def branching_section(run: Run) -> list[str]:
    stats = branching_statistics(run)
    lines = [f"### First divergence, predicted against observed (`{run.id}`)", "",
             "| condition | hazard model | free parameters | TV(observed, predicted) | "
             "TV of a correct prediction (median, 95%) | p | never diverged: observed / "
             "predicted |", "|---|---|---|---|---|---|---|"]
    names = {"greedy": "greedy margin < c·mass", "exact": "1 − Σ p_a p_b (exact)",
             "bound": "1 − sqrt(C_a C_b) (a bound)"}
    for condition, result in stats.items():
        if "error" in result:
            lines.append(f"| {condition} | {names['greedy']} | - | no fit ({result['error']}) "
                         "|||||")
            continue
        kind = result.get("hazard", "greedy")
        params = f"c = {result['c']:.3g}" if kind == "greedy" else "none"
        null = result["null"]
        lines.append(f"| {condition} | {names[kind]} | {params} | {result['tv']:.3f} | "
                     f"{null['null_median']:.3f}, {null['null_q95']:.3f} | "
                     f"{null['p_value']:.3f} | {result['never_observed']:.2f} / "
                     f"{result['never_predicted']:.2f} |")
    return lines + ["", "Verdict: TV 0 is a perfect prediction, 1 a disjoint one; p is the "
                    "share of simulated histograms from the prediction (as many pairs, drawn "
                    "independently) at least as far from it, so a small p rejects the hazard "
                    "model. The greedy row fits c to the same histogram, and no simulation has "
                    "measured the power of either row against named alternatives: both are "
                    "consistency checks. The exact row compares the sampler with its own "
                    "sampling probabilities, so it checks the sampler, not the theory. A "
                    "shared EOS is agreement in both the observed and the predicted "
                    "distribution."]


def theory_report(runs: list[Run]) -> str:
    """Each run's section, from the `theory` of the experiment that wrote it."""
    from rsp_probe.registry import EXPERIMENTS, resolve

    sections = {name: e.theory for name, e in EXPERIMENTS.entries().items()
                if e.theory is not None}
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
