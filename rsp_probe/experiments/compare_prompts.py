"""`rsp-probe compare-prompts`: a trained soft prompt against random ones, on the same
prompts and sampling seeds, in accuracy and in mechanism.

Arms (--arms): none (no prompt), rsp (the Gaussian law), trained (the --soft-prompt vectors),
trained-fit (redrawn per trajectory from a Gaussian fitted to them), trained+noise (plus RSP
noise at --noise-scale), and the controls of rsp_probe/laws/controls.py. Every arm is decoded
twice: sampled at --temperature (--samples per prompt, every probe) and greedily (one
trajectory where the arm is deterministic, else --samples). Per arm (analysis/compare_prompts):
greedy and sampled accuracy, Pass@k, early entropy, attention mass on the prompt's slots over
steps, teacher-forced KL(p_arm || p_none) along the sampled no-prompt twin, first divergence
from that twin and strategy diversity, with bootstrap CIs over prompts, and paired
differences between arms on the same prompts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rsp_probe.config import Condition, _opt, config_value, pass_k_option, single_dose
from rsp_probe.errors import UsageError
from rsp_probe.experiments.base import Experiment, register_experiment
from rsp_probe.experiments.plan_sizes import COMPARED
from rsp_probe.probes.base import DEFAULT_PROBES

if TYPE_CHECKING:
    import pandas as pd

    from rsp_probe.backends.base import Backend
    from rsp_probe.experiments.common import Session, Spec
    from rsp_probe.runs import Run

NONE, RSP = "none", "rsp"
# arm -> --law (rsp_probe.laws): the trained laws, then the built-in controls; a fixed list,
# so that a plugin law never changes the default --arms of a run
ARM_LAWS = {NONE: "gaussian", RSP: "gaussian", "trained": "trained", "trained-fit": "trained-fit",
            "trained+noise": "trained+noise",
            **{law: law for law in ("tokens", "mean", "pc-in", "pc-out", "positions-only",
                                    "neftune")}}
DETERMINISTIC = (NONE, "trained", "mean")  # one greedy trajectory per prompt says it all
GREEDY = "greedy-"  # prefix of an arm's greedy condition
KL_PROBE = "compare_kl"


@dataclass(frozen=True)
class CompareOptions:
    arms: tuple[str, ...] = _opt(tuple(ARM_LAWS), "arms compared: " + ", ".join(ARM_LAWS))
    noise_scale: float = _opt(1.0, "sigma scale of the RSP noise in the trained+noise arm")
    pass_k: tuple[int, ...] = pass_k_option((1, 2, 4))


def _check(spec: Spec) -> tuple[str, ...]:
    if single_dose(spec.command, spec.rsp.rsp_tokens) < 1:
        raise UsageError("compare-prompts takes one --rsp-tokens k >= 1: the soft prompt's")
    arms = tuple(spec.option("arms"))
    unknown = [a for a in arms if a not in ARM_LAWS]
    if unknown or NONE not in arms or len(set(arms)) != len(arms):
        raise UsageError(f"--arms: each of {', '.join(ARM_LAWS)} at most once, `none` "
                         f"included; got {','.join(arms)}")
    if not spec.rsp.soft_prompt:
        raise UsageError("compare-prompts needs --soft-prompt FILE (from `rsp-probe "
                         "tune-prompt`)")
    if spec.option("noise_scale") < 0 or spec.sampling.temperature == 0:
        raise UsageError("--noise-scale must be >= 0 and --temperature > 0 (the greedy arms "
                         "are decoded anyway)")
    return (NONE, *(arm for arm in arms if arm != NONE))  # the twins the others are read along


def run_compare(spec: Spec, model: Backend | None = None) -> tuple[Run, pd.DataFrame]:
    from rsp_probe.analysis.compare_prompts import COMPARE_FILE
    from rsp_probe.experiments.common import Session

    arms = _check(spec)
    session = Session(spec, model)
    with session:
        _stream(session, arms)
        session.writer.merge_parts()
        session.writer.write_derived(compare_files(session.writer.staged_run()))
        run = session.finish()
    return run, run.table(COMPARE_FILE)


def compare_files(run: Run) -> dict:
    from rsp_probe.analysis.compare_prompts import derived_files

    return derived_files(run, tuple(config_value(run.config, "pass_k")))


def compare_summary(run: Run) -> pd.DataFrame:
    from rsp_probe.analysis.compare_prompts import COMPARE_FILE

    return run.table(COMPARE_FILE)


def _arm_law(session: Session, arm: str):
    from rsp_probe.experiments.sampling import rsp_law

    scale = session.spec.option("noise_scale") if arm == "trained+noise" else None
    return rsp_law(session, ARM_LAWS[arm], sigma_scale=scale)


def _conditions(spec: Spec, arm: str) -> list[tuple[Condition, int]]:
    """(condition, samples) of the arm: sampled, then greedy."""
    k = 0 if arm == NONE else spec.rsp.rsp_tokens[0]
    s = spec.sampling
    greedy_samples = 1 if arm in DETERMINISTIC else s.samples
    return [(Condition(arm, k, s.temperature, s.top_p), s.samples),
            (Condition(GREEDY + arm, k, 0.0, s.top_p), greedy_samples)]


def _stream(session: Session, arms: tuple[str, ...]) -> None:
    """Each arm's conditions in turn, each a block of parts after the other (--resume skips
    the parts done); the sampled arms teacher-forced batch by batch along their no-prompt
    twins (read back from the `none` arm's parts)."""
    from functools import cache, partial

    from rsp_probe.experiments.sampling import (
        build_jobs,
        law_interventions,
        phase_tokens,
        stream_jobs,
    )
    from rsp_probe.probes.base import DEFAULT_PROBES, LOGIT_ONLY_PROBES

    spec = session.spec
    first_part, first_record, baseline = 0, 0, None
    session.plan_progress([pair for arm in arms for pair in _conditions(spec, arm)])
    for arm in arms:  # `none` first: the twins the others are compared with
        law = _arm_law(session, arm)
        for condition, samples in _conditions(spec, arm):
            jobs, skeleton = build_jobs(session, [condition], samples, law=law, draw=False)
            probes = LOGIT_ONLY_PROBES if condition.greedy else DEFAULT_PROBES
            parts = stream_jobs(session, jobs, skeleton, law, first_part=first_part,
                                order=lambda i, start=first_record: start + i, probes=probes,
                                interventions=law_interventions(law),
                                complete=partial(_complete, session, arm, law, condition,
                                                 baseline))
            if condition.name == NONE:  # its tokens read back once, when a batch needs them
                baseline = cache(partial(phase_tokens, session,
                                         range(first_part, first_part + parts)))
            first_part, first_record = first_part + parts, first_record + len(jobs)


def _complete(session: Session, arm: str, law, condition: Condition, baseline, jobs,
              sampled) -> None:
    """A decoded batch of one arm: the arm in each record, and (sampled arms whose law the
    queries can attend to) the KL along each no-prompt twin."""
    for record in sampled.records:
        record["arm"] = arm
    if condition.name == NONE:
        return  # the twins themselves
    if not condition.greedy and law.attends_to_slots():
        _teacher_force(session, jobs, baseline(), sampled.steps)


def _teacher_force(session: Session, jobs, baseline, steps) -> None:
    """KL(p_arm || p_none) along each sampled no-prompt twin's tokens (probe compare_kl).
    Not for positions-only and neftune: the teacher-forced pass applies no knockout and
    adds no prompt noise."""
    from rsp_probe.probes.influence import influence_batch

    for job in jobs:
        _, prompt_id, sample = job.id.split("/")
        tokens = baseline[(prompt_id, int(sample))]
        if tokens:
            steps[job.id][KL_PROBE] = influence_batch(session.model, [job], tokens)[job.id]["kl"]


EXPERIMENT = register_experiment(Experiment(
    name="compare-prompts",
    help="a trained soft prompt (--soft-prompt) against no prompt, RSPs, its Gaussian refit "
    "and the controls: accuracy, Pass@k, entropy, attention, KL, divergence, diversity",
    run=run_compare, options=CompareOptions,
    describe="rsp_probe.analysis.compare_prompts:describe_compare",
    defaults={"rsp_tokens": (16,), "samples": 4, "temperature": 1.0, "max_new_tokens": 48},
    single_dose=True,
    figures=("compare_prompts",),
    # every sampled arm records these; its greedy twins the logit probes only
    probes=DEFAULT_PROBES, claims=("rsp_probe.claims.soft_prompts", "rsp_probe.claims.theory"),
    # the committed soft prompt (k = 16) against RSPs, its Gaussian refit and the controls
    reproduce=(("compare-prompts", dict(COMPARED, rsp_tokens=(16,), soft_prompt="default")),),
    derive=compare_files, summarize=compare_summary))
