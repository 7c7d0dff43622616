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
from rsp_probe.probes.base import LOGIT_ONLY_PROBES

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
    """Streamed like the sampling experiments: each dose is decoded batch by batch into
    parts (the baseline first: the twins the others are teacher-forced along), --resume
    skips the parts done; the score-shift dose (written dose by dose, so --resume computes
    only the doses missing) and dose.parquet come after the merge."""
    from rsp_probe.experiments.common import Session

    scales = _check(spec)
    session = Session(spec, model)
    with session:
        doses = _doses(session, scales)
        _stream(session, doses)
        session.writer.merge_parts()
        _score_shifts(session, doses)  # into score_shift.parquet, dose by dose
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


def _stream(session: Session, doses) -> None:
    """Each dose in turn, one block of parts after the other (trajectories.jsonl: one block
    per dose, each in job order); every dose but the baseline teacher-forced batch by batch
    along its baseline twins (probe dose_kl)."""
    from functools import cache, partial

    from rsp_probe.experiments.sampling import (
        build_jobs,
        law_interventions,
        phase_tokens,
        stream_jobs,
    )

    spec = session.spec
    session.plan_progress([(condition, spec.sampling.samples) for condition, _, _ in doses])
    first_part, first_record, baseline = 0, 0, None
    for condition, law, scale in doses:
        jobs, skeleton = build_jobs(session, [condition], spec.sampling.samples, law=law,
                                    draw=False)
        parts = stream_jobs(session, jobs, skeleton, law, first_part=first_part,
                            order=lambda i, start=first_record: start + i,
                            interventions=law_interventions(spec.rsp.law),
                            complete=partial(_complete, session, scale, baseline))
        if baseline is None:  # its tokens read back once, when a later batch needs them
            baseline = cache(partial(phase_tokens, session,
                                     range(first_part, first_part + parts)))
        first_part, first_record = first_part + parts, first_record + len(jobs)


def _complete(session: Session, scale: float, baseline, jobs, sampled) -> None:
    """A decoded batch of one dose: its sigma scale, and (not the baseline) the KL along
    each baseline twin."""
    for record in sampled.records:
        record["dose_sigma_scale"] = scale  # on top of the run's --sigma-scale
    if baseline is not None:
        _teacher_force(session, jobs, baseline(), sampled.steps)


def _score_shifts(session: Session, doses) -> None:
    """The score-shift rows of every dose but the baseline, in dose then prompt order, from
    sample 0 of each prompt and its baseline twin's tokens (the merged run's). The table is
    rewritten after each dose, so a resumed run computes only the doses missing from it."""
    from rsp_probe.analysis.dose import score_shift_table
    from rsp_probe.experiments.sampling import build_jobs, with_vectors
    from rsp_probe.runs import kill_point

    spec, writer = session.spec, session.writer
    staged = writer.staged_run()
    baseline = {(r["prompt_id"], r["sample"]): r["generated_token_ids"]
                for r in staged.records()
                if r["condition"] == doses[0][0].name and r["sample"] == 0}
    rows = _staged_shift_rows(staged)
    done = {row["condition"] for row in rows}
    for condition, law, _ in doses[1:]:
        if condition.name in done:
            continue
        jobs, skeleton = build_jobs(session, [condition], spec.sampling.samples, law=law,
                                    draw=False)
        first = [with_vectors(law, job, record["rsp_seed"])
                 for job, record in zip(jobs, skeleton) if record["sample"] == 0]
        rows += _shifts(session, first, baseline, condition.name)
        writer.write_table(SCORE_SHIFT_FILE, score_shift_table(rows))
        kill_point(f"score-shift-{condition.name}")
    writer.write_table(SCORE_SHIFT_FILE, score_shift_table(rows))  # also with no dose left


def _staged_shift_rows(staged: Run) -> list[dict]:
    """The rows an interrupted run already wrote (none in a fresh run)."""
    if not (staged.path / SCORE_SHIFT_FILE).exists():
        return []
    frame = staged.table(SCORE_SHIFT_FILE).drop(columns="cell_slope")
    return frame.to_dict("records")


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
    figures=("dose",), probes=LOGIT_ONLY_PROBES,
    claims=("rsp_probe.claims.outcomes", "rsp_probe.claims.theory"),
    reproduce=(("dose", dict(COMPARED, rsp_tokens=(1, 2, 4, 8, 16, 32),
                             sigma_scales=("0.5", "2"))),),
    derive=dose_file, summarize=dose_summary,
    trajectory_order="condition"))
