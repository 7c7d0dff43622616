"""`rsp-probe dose`: the RSP's effect against its dose, on the same prompts and seeds.

Doses: k in --rsp-tokens at sigma scale 1, and --sigma-scales at k = --dose-k. Per dose:
teacher-forced KL against the baseline along the baseline's own trajectory (steps 1..3),
first divergence from the baseline twin (same prompt and sample), accuracy and pass@k, with
bootstrap CIs over prompts (dose.parquet). The score-shift dose adds beta to the RSP keys'
scores at --shift-step (rsp_probe.interventions.score_shift) and records m and
KL(p_beta || p_blocked) per (prompt, beta) in score_shift.parquet.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from itertools import groupby
from typing import TYPE_CHECKING

from rsp_probe.analysis.tables import DOSE_FILE, SCORE_SHIFT_FILE
from rsp_probe.config import Condition, _opt, config_value, pass_k_option
from rsp_probe.errors import UsageError
from rsp_probe.experiments.base import Experiment, register_experiment
from rsp_probe.experiments.plan_sizes import COMPARED

if TYPE_CHECKING:
    import pandas as pd

    from rsp_probe.backends.base import Backend
    from rsp_probe.experiments.common import Session, Spec
    from rsp_probe.runs import Run

BETAS = (-4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 6.0)


@dataclass(frozen=True)
class DoseOptions:
    sigma_scales: tuple[str, ...] = _opt(("0.5", "2"), "sigma scales tried at k = --dose-k")
    dose_k: int = _opt(4, "k of the sigma-scale doses")
    shift_step: int = _opt(2, "step of the score-shift dose")
    pass_k: tuple[int, ...] = pass_k_option((1, 2, 4))


def _check(spec: Spec) -> list[float]:
    try:
        scales = [float(s) for s in spec.option("sigma_scales")]
    except ValueError:
        raise UsageError(f"--sigma-scales: expected numbers, got {spec.option('sigma_scales')}"
                         ) from None
    if any(s <= 0 for s in scales) or spec.option("dose_k") < 1 or spec.option("shift_step") < 1:
        raise UsageError("--sigma-scales must be > 0, --dose-k and --shift-step >= 1")
    return scales


def run_dose(spec: Spec, model: Backend | None = None) -> tuple[Run, pd.DataFrame]:
    from rsp_probe.analysis.dose import score_shift_table
    from rsp_probe.experiments.common import Session

    scales = _check(spec)
    session = Session(spec, model)
    with session:
        records, rsp, steps, shifts = _sample(session, scales)
        session.writer.write_trajectories(records, rsp, steps)
        session.writer.write_table(SCORE_SHIFT_FILE, score_shift_table(shifts))
        session.writer.write_derived(dose_file(session.writer.staged_run()))
        run = session.finish()
    return run, run.table(DOSE_FILE)


def dose_file(run: Run) -> dict:
    """dose.parquet from the run's trajectories and steps (also after `grade`)."""
    from rsp_probe.analysis.dose import dose_table

    return {DOSE_FILE: dose_table(run, tuple(config_value(run.config, "pass_k")))}


def dose_summary(run: Run) -> pd.DataFrame:
    return run.table(DOSE_FILE)


def _doses(session: Session, scales: list[float]):
    """(condition, law) per dose: baseline, each k at scale 1, each scale at dose_k."""
    from rsp_probe.experiments.sampling import rsp_law

    spec = session.spec
    make = lambda name, k: Condition(name, k, spec.sampling.temperature, spec.sampling.top_p)
    base_law = rsp_law(session)
    doses = [(make("k0", 0), base_law, 1.0)]
    doses += [(make(f"k{k}", k), base_law, 1.0) for k in sorted(set(spec.rsp.rsp_tokens))
              if k > 0]
    for scale in scales:
        scaled = dataclasses.replace(base_law, std=base_law.std * scale)
        doses.append((make(f"k{spec.option('dose_k')}-sigma{scale:g}", spec.option("dose_k")),
                      scaled, scale))
    return doses


def _sample(session: Session, scales: list[float]):
    from rsp_probe.experiments.sampling import build_jobs, finish_records, law_interventions
    from rsp_probe.probes.base import LOGIT_ONLY_PROBES
    from rsp_probe.sampler import generate

    spec = session.spec
    records, rsp, steps, shifts, baseline = [], {}, {}, [], None
    doses = _doses(session, scales)
    session.plan_progress([(condition, spec.sampling.samples) for condition, _, _ in doses])
    for condition, law, scale in doses:
        jobs, skeleton = build_jobs(session, [condition], spec.sampling.samples, law=law)
        trajectories = generate(session.model, jobs, spec.sampling.max_new_tokens,
                                batch_size=spec.sampling.batch_size, probes=LOGIT_ONLY_PROBES,
                                progress=session.progress,
                                interventions=law_interventions(spec.rsp.law))
        sampled = finish_records(session, jobs, skeleton, trajectories)
        for record in sampled.records:
            record["dose_sigma_scale"] = scale  # on top of the run's --sigma-scale
        if baseline is None:
            baseline = {(r["prompt_id"], r["sample"]): r["generated_token_ids"]
                        for r in sampled.records}
        else:
            _teacher_force(session, jobs, baseline, sampled.steps)
            shifts += _shifts(session, jobs, baseline, condition.name)
        records += sampled.records
        rsp.update(sampled.rsp)
        steps.update(sampled.steps)
    return records, rsp, steps, shifts


def _teacher_force(session: Session, jobs, baseline, steps) -> None:
    """KL(p_dose || p_base) along each baseline twin's tokens, as the probe `dose_kl`."""
    from rsp_probe.probes.influence import influence_batch

    for job in jobs:
        prompt_id, sample = job.id.split("/")[1], int(job.id.split("/")[2])
        tokens = baseline[(prompt_id, sample)]
        if tokens:
            steps[job.id]["dose_kl"] = influence_batch(session.model, [job], tokens)[job.id]["kl"]


def _shifts(session: Session, jobs, baseline, condition: str) -> list[dict]:
    from rsp_probe.interventions.score_shift import score_shift

    step = session.spec.option("shift_step")
    rows = []
    first = [next(group) for _, group in groupby(jobs, key=lambda j: j.id.split("/")[1])]
    for job in first:  # sample 0 of each prompt
        prompt_id = job.id.split("/")[1]
        tokens = baseline[(prompt_id, 0)]
        if len(tokens) < step - 1:
            continue
        masses, kls = score_shift(session.model, job, tokens, step, list(BETAS))
        rows += [{"condition": condition, "prompt_id": prompt_id, "step": step, "beta": beta,
                  "m": m, "kl": kl} for beta, m, kl in zip(BETAS, masses, kls)]
    return rows


EXPERIMENT = register_experiment(Experiment(
    name="dose",
    help="dose-response: k and sigma scales against the baseline (KL, first divergence, "
    "accuracy, pass@k), and the score-shift dose testing KL ~ m^2",
    run=run_dose, options=DoseOptions, describe="rsp_probe.analysis.summaries:describe_dose",
    defaults={"rsp_tokens": (1, 2, 4, 8, 16, 32), "samples": 4, "temperature": 1.0,
              "max_new_tokens": 32},
    figures=("dose",), claims=("rsp_probe.claims.outcomes", "rsp_probe.claims.theory"),
    reproduce=(("dose", dict(COMPARED, rsp_tokens=(1, 2, 4, 8, 16, 32),
                             sigma_scales=("0.5", "2"))),),
    derive=dose_file, summarize=dose_summary,
    trajectory_order="condition"))
