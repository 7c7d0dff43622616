"""Claims about the mechanism on the default model: the entropy lift, the RSP's share of
attention and the teacher-forced influence, per fixed window and per dose k. No torch."""

from __future__ import annotations

from collections.abc import Iterator

from rsp_probe.analysis.conditions import condition_settings
from rsp_probe.analysis.grades import graded
from rsp_probe.claims.core import Claim, claim_family
from rsp_probe.claims.measures import (
    WINDOW_MEAN,
    WINDOW_TEXT,
    WINDOWS,
    baseline_condition,
    estimate,
    paired,
    rsp_conditions,
    verdict,
    window_by_prompt,
    window_frame,
)
from rsp_probe.probes.names import ATTENTION_PROBE
from rsp_probe.runs import Run

LIFT = ("{window_text}, k={k}: next-token entropy {value:+.3f} nats against k=0, 95% CI "
        "[{ci_low:+.3f}, {ci_high:+.3f}] ({verdict}; {n} prompts).")
LIFT_STATISTIC = ("per prompt, the window mean of entropy (nats; each trajectory's steps in "
                  "the window, then its trajectories) at k minus the same at k=0; mean over "
                  "prompts, prompt-bootstrap 95% CI")


def lift_claims(run: Run, name: str, prefix: str, section: str,
                windows=WINDOWS) -> Iterator[Claim]:
    """The entropy lift of every RSP dose of `run` over its k=0 condition, per window."""
    frame = window_frame(run, "entropy")
    base = baseline_condition(run)
    for window in windows:
        per_prompt = window_by_prompt(frame, window)
        for condition, k in rsp_conditions(run):
            stats = paired(per_prompt, condition, base)
            yield Claim(
                id=f"{prefix}.{window}.k{k}", section=section, runs=(name,),
                statistic=LIFT_STATISTIC, template=LIFT, **stats,
                fields={"window_text": WINDOW_TEXT[window], "k": k,
                        "verdict": verdict(stats["ci_low"], stats["ci_high"], "a lift",
                                           "a drop", "no detectable change")})


def accuracy_claims(run: Run, name: str, prefix: str, section: str,
                    describe=None) -> Iterator[Claim]:
    """Accuracy at k=0, and each RSP condition's paired change from it (graded trajectories
    only); describe(condition) names the dose (default: its k)."""
    frame = run.trajectories[graded(run.trajectories)]
    per_prompt = frame["correct"].astype(float).groupby(
        [frame["condition"], frame["prompt_id"]]).mean()
    base = baseline_condition(run)
    stats = estimate(per_prompt.xs(base, level=0).to_numpy())
    yield Claim(id=f"{prefix}.k0", section=section, runs=(name,),
                statistic="share of graded trajectories correct, per prompt; mean over prompts",
                template="Accuracy without an RSP: {value:.3f}, 95% CI [{ci_low:.3f}, "
                         "{ci_high:.3f}] ({n} prompts).", **stats)
    for condition, k in rsp_conditions(run):
        stats = paired(per_prompt, condition, base)
        dose = describe(condition) if describe is not None else f"k={k}"
        yield Claim(id=f"{prefix}.change.{condition}", section=section, runs=(name,),
                    statistic="per prompt, accuracy with the RSP minus accuracy at k=0; mean "
                              "over prompts, prompt-bootstrap 95% CI",
                    template="Accuracy at {dose}: {value:+.3f} against k=0, 95% CI "
                             "[{ci_low:+.3f}, {ci_high:+.3f}] ({verdict}).", **stats,
                    fields={"dose": dose,
                            "verdict": verdict(stats["ci_low"], stats["ci_high"])})


@claim_family("entropy", "Entropy", runs=("entropy",))
def entropy_claims(runs: dict[str, Run]) -> Iterator[Claim]:
    yield from lift_claims(runs["entropy"], "entropy", "entropy.lift", "Entropy")
    yield from accuracy_claims(runs["entropy"], "entropy", "entropy.accuracy", "Entropy")


def window_means(run: Run, name: str, probe: str, prefix: str, section: str, template: str,
                 statistic: str, describe=None, transform=None,
                 reference: str | None = None) -> Iterator[Claim]:
    """Mean over prompts of a probe's window mean, per window and per condition that has the
    probe; describe(condition) fills the template (default: the condition's k). A probe
    along a `reference` condition's tokens is windowed by the reference's length."""
    if describe is None:
        ks = dict(rsp_conditions(run))
        describe = lambda condition: {"k": ks[condition]}  # noqa: E731
    frame = window_frame(run, probe, reference)
    if transform is not None:
        frame = frame.assign(value=transform(frame["value"]))
    for window in WINDOWS:
        per_prompt = window_by_prompt(frame, window)
        present = set(per_prompt.index.get_level_values(0))
        for condition in (c for c in condition_settings(run).index if c in present):
            yield Claim(id=f"{prefix}.{window}.{condition}", section=section, runs=(name,),
                        statistic=f"{statistic}; {WINDOW_MEAN}", template=template,
                        **estimate(per_prompt.xs(condition, level=0).to_numpy()),
                        fields={"window_text": WINDOW_TEXT[window], **describe(condition)})


@claim_family("attention", "Attention on the RSP", runs=("attention",))
def attention_claims(runs: dict[str, Run]) -> Iterator[Claim]:
    yield from window_means(
        runs["attention"], "attention", ATTENTION_PROBE, "attention.mass", "Attention on the RSP",
        "{window_text}, k={k}: the RSP keys hold {value:.3f} of the newest query's attention "
        "(mean over layers and heads), 95% CI [{ci_low:.3f}, {ci_high:.3f}] ({n} prompts).",
        "attention of the newest query summed over the RSP keys, averaged over layers and "
        "heads")


@claim_family("influence", "Influence", runs=("influence",))
def influence_claims(runs: dict[str, Run]) -> Iterator[Claim]:
    run = runs["influence"]
    yield from window_means(
        run, "influence", "kl", "influence.kl", "Influence",
        "{window_text}, k={k}: KL(p_rsp‖p_base) {value:.4f} nats along the baseline's own "
        "answer, 95% CI [{ci_low:.4f}, {ci_high:.4f}] ({n} prompts).",
        "teacher-forced KL of the RSP draw's next-token distribution from the baseline's")
    yield from window_means(
        run, "influence", "top1_agree", "influence.top1_changed", "Influence",
        "{window_text}, k={k}: the RSP changes the top-1 token at {value:.3f} of steps, "
        "95% CI [{ci_low:.3f}, {ci_high:.3f}].",
        "1 - top-1 agreement with the baseline", transform=lambda v: 1.0 - v)




__all__ = ["accuracy_claims", "lift_claims", "window_means"]
