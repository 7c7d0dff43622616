"""Claims about outcomes: branching (distinct prefixes and strategies per condition), Pass@N
gains with paired CIs, the dose-response, the ablations and the knockout cuts and paths.
Every dose the runs hold is reported (the reproduce plan's k = 4 and 16). No torch."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from rsp_probe.analysis.conditions import condition_settings
from rsp_probe.analysis.diversity import OTHER_STRATEGY, diversity_frame
from rsp_probe.analysis.passk import default_pairs, paired_table, passk_table, problem_counts
from rsp_probe.analysis.tables import BRANCHING_FILE
from rsp_probe.analysis.windows import EARLY, MIDDLE
from rsp_probe.claims.core import Claim, claim_family
from rsp_probe.claims.knockout_paths import path_claims
from rsp_probe.claims.measures import (
    baseline_condition,
    estimate,
    paired,
    rsp_conditions,
    verdict,
    window_by_prompt,
    window_frame,
)
from rsp_probe.claims.mechanism import accuracy_claims, lift_claims, window_means
from rsp_probe.registry import reproduce_plan
from rsp_probe.runs import Run

WINDOW_ENDS = {"early": EARLY[1], "middle": MIDDLE[1]}  # prefixes are compared at these steps


def _k_of(run: Run) -> dict[str, int]:
    return condition_settings(run)["rsp_tokens"].astype(int).to_dict()


def branching_claims(run: Run, name: str) -> Iterator[Claim]:
    k = _k_of(run)
    table = run.table(BRANCHING_FILE)
    fractions = table[table["record"] == "distinct_prefix_fraction"]
    for window, step in WINDOW_ENDS.items():
        at = fractions[fractions["step"] == step]
        for condition, group in at.groupby("condition", sort=False):
            yield Claim(
                id=f"{name}.prefixes.{window}.{condition}", section="Branching",
                runs=(name,), **estimate(group["value"].to_numpy()),
                statistic="distinct prefixes of length t among a prompt's samples divided by "
                          "the samples, at the window's last step t; mean over prompts",
                template="{condition} (k={k}), by step {step} (end of the {window} window): "
                         "{value:.3f} of a prompt's samples have distinct prefixes, 95% CI "
                         "[{ci_low:.3f}, {ci_high:.3f}] ({n} prompts).",
                fields={"condition": condition, "k": k[condition], "step": step,
                        "window": window})
        per_prompt = at.set_index(["condition", "prompt_id"])["value"]
        for a, b in default_pairs(at["condition"].unique()):
            stats = paired(per_prompt, a, b)
            yield Claim(
                id=f"{name}.prefixes.{window}.{a}.vs.{b}", section="Branching",
                runs=(name,), **stats,
                statistic="per prompt, the distinct-prefix fraction of a minus b at the "
                          "window's last step; mean over prompts, prompt-bootstrap 95% CI",
                template="Distinct prefixes by step {step}, {a} (k={k}) minus {b}: {value:+.3f}, "
                         "paired 95% CI [{ci_low:+.3f}, {ci_high:+.3f}] ({verdict}).",
                fields={"a": a, "b": b, "k": k[a], "step": step,
                        "verdict": verdict(stats["ci_low"], stats["ci_high"], "more branching",
                                           "less branching")})
    yield from _strategy_claims(run, name, k)


def _strategy_claims(run: Run, name: str, k: dict[str, int]) -> Iterator[Claim]:
    frame = diversity_frame(run.trajectories)
    if frame["distinct_strategies"].isna().all():
        return
    per_prompt = frame.set_index(["condition", "prompt_id"])["distinct_strategies"]
    traj = run.trajectories
    other = (traj["strategy"] == OTHER_STRATEGY).astype(float).groupby(
        [traj["condition"], traj["prompt_id"]]).mean()
    samples = int(traj.groupby(["condition", "prompt_id"]).size().max())
    for condition in per_prompt.index.get_level_values(0).unique():
        yield Claim(
            id=f"{name}.strategies.{condition}", section="Branching", runs=(name,),
            **estimate(per_prompt.xs(condition, level=0).to_numpy()),
            statistic="distinct named solution strategies among a prompt's samples (a solution "
                      "that follows no known strategy counts for none); mean over prompts",
            template="{condition} (k={k}): {value:.2f} distinct named solution strategies "
                     "among {samples} samples per prompt, 95% CI [{ci_low:.2f}, {ci_high:.2f}].",
            fields={"condition": condition, "k": k[condition], "samples": samples})
        yield Claim(
            id=f"{name}.no_strategy.{condition}", section="Branching", runs=(name,),
            **estimate(other.xs(condition, level=0).to_numpy()),
            statistic="share of a prompt's samples whose solution follows no known strategy; "
                      "mean over prompts, bootstrap CI",
            template="{condition} (k={k}): {value:.3f} of samples follow no known solution "
                     "strategy, 95% CI [{ci_low:.3f}, {ci_high:.3f}].",
            fields={"condition": condition, "k": k[condition]})
    for a, b in default_pairs(per_prompt.index.get_level_values(0).unique()):
        stats = paired(per_prompt, a, b)
        yield Claim(
            id=f"{name}.strategies.{a}.vs.{b}", section="Branching", runs=(name,),
            **stats, statistic="per prompt, distinct named strategies of a minus b; mean over "
                               "prompts, prompt-bootstrap 95% CI",
            template="Distinct named strategies, {a} (k={k}) minus {b}: {value:+.2f}, paired "
                     "95% CI [{ci_low:+.2f}, {ci_high:+.2f}] ({verdict}).",
            fields={"a": a, "b": b, "k": k[a],
                    "verdict": verdict(stats["ci_low"], stats["ci_high"], "more", "fewer")})


def passk_claims(run: Run, name: str) -> Iterator[Claim]:
    k = _k_of(run)
    counts = problem_counts(run)
    largest = int(counts["drawn"].max())
    ns = sorted({1, largest})  # Pass@1 and Pass@N at the run's own N, fixed by the plan
    for row in passk_table(run, ns).itertuples():  # the levels, so a ceiling is visible
        yield Claim(
            id=f"{name}.level.{row.condition}.n{row.k}", section="Pass@N", runs=(name,),
            value=row.pass_at_k, ci_low=row.ci_low, ci_high=row.ci_high, n=row.n_problems,
            statistic="unbiased Pass@N per problem from its graded samples; mean over "
                      "problems, bootstrap CI",
            template="Pass@{N}, {condition} (k={k}): {value:.3f}, 95% CI [{ci_low:.3f}, "
                     "{ci_high:.3f}] ({n} problems).",
            fields={"N": int(row.k), "condition": row.condition, "k": k[row.condition]})
    for row in paired_table(run, ns, default_pairs(counts["condition"].unique())).itertuples():
        yield Claim(
            id=f"{name}.gain.{row.a}.vs.{row.b}.n{row.k}", section="Pass@N", runs=(name,),
            value=row.difference, ci_low=row.ci_low, ci_high=row.ci_high,
            n=int(counts["prompt_id"].nunique()),
            statistic="unbiased Pass@N of a minus that of b on the same problems; bootstrap "
                      "over problems, one resample for both",
            template="Pass@{N}, {a} (k={k}) minus {b}: {value:+.3f}, paired 95% CI "
                     "[{ci_low:+.3f}, {ci_high:+.3f}] ({verdict}; {n} problems).",
            fields={"N": int(row.k), "a": row.a, "b": row.b, "k": k[row.a],
                    "verdict": verdict(row.ci_low, row.ci_high, "a gain", "a loss")})


@claim_family("dose", "Dose-response", runs=("dose",))
def dose_claims(runs: dict[str, Run]) -> Iterator[Claim]:
    run = runs["dose"]
    traj = run.trajectories
    scale = (traj.groupby("condition")["dose_sigma_scale"].first() if "dose_sigma_scale" in traj
             else None)
    k = _k_of(run)

    def dose(condition) -> str:
        sigma = 1.0 if scale is None else float(scale.get(condition, 1.0))
        return f"k={k[condition]}" + ("" if sigma == 1.0 else f", sigma x{sigma:g}")

    yield from window_means(
        run, "dose", "dose_kl", "dose.kl", "Dose-response",
        "{window_text}, {dose}: KL from the k=0 distribution {value:.4f} nats, 95% CI "
        "[{ci_low:.4f}, {ci_high:.4f}] ({n} prompts).",
        "teacher-forced KL of the dose's next-token distribution from k=0's along k=0's "
        "tokens (windows by the k=0 trajectory's length)",
        lambda condition: {"dose": dose(condition)}, reference=baseline_condition(run))
    yield from accuracy_claims(run, "dose", "dose.accuracy", "Dose-response", describe=dose)


def _register_per_run(command: str, section: str, claims) -> None:
    """One family per run of `command` in the reproduce plan (one dose per run): its claims'
    ids start with the run name, and sentences of runs not named after the command say it."""
    for name in (name for name, used, _ in reproduce_plan() if used == command):
        def compute(runs: dict[str, Run], name=name) -> Iterator[Claim]:
            for claim in claims(runs[name], name):
                prefix = "" if name == command else f"{name}: "
                yield Claim(**{**claim.__dict__, "template": prefix + claim.template})
        claim_family(name, section, runs=(name,))(compute)


_register_per_run("branching", "Branching", branching_claims)
_register_per_run("passk", "Pass@N", passk_claims)


def _ablations() -> list[tuple[str, str]]:
    """(run name, what differs from the main entropy run) of the reproduce plan's ablations."""
    return [(name, ", ".join(f"{key}={value}" for key, value in options.items()
                             if key not in ("n_prompts", "max_new_tokens", "rsp_tokens")))
            for name, _, options in reproduce_plan() if name.startswith("ablation-")]


def _early_lifts(run: Run):
    """k -> per-prompt early-window entropy lift over the run's k=0 condition."""
    per_prompt = window_by_prompt(window_frame(run, "entropy"), "early")
    base = per_prompt.xs(baseline_condition(run), level=0)
    return {k: per_prompt.xs(condition, level=0) - base for condition, k in rsp_conditions(run)}


def _register_ablation(name: str, change: str) -> None:
    @claim_family(name, "Ablations", runs=(name, "entropy"))
    def ablation_claims(runs: dict[str, Run]) -> Iterator[Claim]:
        # The early window only, fixed in advance: it is where the paper puts the effect.
        for claim in lift_claims(runs[name], name, f"{name}.lift", "Ablations",
                                 windows=("early",)):
            yield Claim(**{**claim.__dict__, "template": f"{change}: " + claim.template})
        main, ablated = _early_lifts(runs["entropy"]), _early_lifts(runs[name])
        for k in sorted(set(main) & set(ablated)):
            stats = estimate((ablated[k] - main[k]).dropna().to_numpy())
            yield Claim(
                id=f"{name}.lift_vs_main.early.k{k}", section="Ablations",
                runs=(name, "entropy"), **stats,
                statistic="per prompt, the ablated run's early entropy lift minus the main "
                          "entropy run's (same prompts and seeds); mean over prompts, bootstrap CI",
                template=f"{change}: " + "early lift at k={k} minus the main run's: "
                         "{value:+.3f} nats, 95% CI [{ci_low:+.3f}, {ci_high:+.3f}] ({verdict}).",
                fields={"k": k, "verdict": verdict(stats["ci_low"], stats["ci_high"])})
        for claim in accuracy_claims(runs[name], name, f"{name}.accuracy", "Ablations"):
            if claim.id.endswith(".k0"):
                continue  # the baseline is the main run's; only the change is the ablation's
            yield Claim(**{**claim.__dict__, "template": f"{change}: " + claim.template})


for _name, _change in _ablations():
    _register_ablation(_name, _change)


def _knockout_label(run: Run):
    traj = run.trajectories.groupby("condition").first()

    def describe(condition):
        spec = traj.loc[condition].get("intervention") if "intervention" in traj else None
        if not isinstance(spec, dict):
            return {"what": condition}
        if spec.get("layers") is not None:
            layers = spec["layers"]
            noun = "layer" if len(layers) == 1 else "layers"
            cut = spec.get("cut_after")
            since = "" if cut in (None, 1) else f" from step {cut} on"
            return {"what": f"RSP keys masked in {noun} {'+'.join(map(str, layers))}{since}"}
        if spec.get("path") is not None:  # sampled paths: who may read the RSP keys
            return {"what": {"direct": "only the newest query reads the RSP (direct path)",
                             "indirect": "only earlier positions read the RSP (indirect path)"}
                    .get(spec["path"], f"path {spec['path']}")}
        cut = spec.get("cut_after")
        if cut is None:
            return {"what": "RSP kept throughout"}
        prefill = " (the prefill)" if cut == 1 else ""
        return {"what": f"RSP keys masked from step {cut}{prefill} on"}
    return describe


@claim_family("knockout", "Knockout", runs=("knockout",))
def knockout_claims(runs: dict[str, Run]) -> Iterator[Claim]:
    run = runs["knockout"]
    yield from window_means(
        run, "knockout", "knockout_kl", "knockout.kl", "Knockout",
        "{window_text}, {what}: KL(p_full‖p_knocked) {value:.4f} nats along the full RSP's "
        "tokens, 95% CI [{ci_low:.4f}, {ci_high:.4f}] ({n} prompts).",
        "teacher-forced KL of the full-RSP distribution from the knocked-out one",
        _knockout_label(run), reference="full")
    yield from path_claims(run)
    for path, probe in (("direct-only", "kl_direct_only"), ("indirect-only", "kl_indirect_only")):
        if not np.any(run.steps["probe"] == probe):
            continue
        yield from window_means(
            run, "knockout", probe, f"knockout.{path}", "Knockout",
            "{window_text}, {what} path ({condition} trajectories): KL(p_full‖p_{what}) "
            "{value:.4f} nats, 95% CI [{ci_low:.4f}, {ci_high:.4f}] ({n} prompts).",
            f"teacher-forced KL of the full-RSP distribution from the one where the RSP acts "
            f"through the {path} path only",
            lambda condition, path=path: {"what": path, "condition": condition})
