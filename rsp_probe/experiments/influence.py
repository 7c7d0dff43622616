"""`rsp-probe influence`: teacher-forced KL, TV, entropy shift and top-1 agreement of RSP
draws along each prompt's baseline greedy continuation."""

from __future__ import annotations

from itertools import groupby
from typing import TYPE_CHECKING

from rsp_probe.config import Condition
from rsp_probe.experiments.base import Experiment, register_experiment
from rsp_probe.experiments.common import Session

if TYPE_CHECKING:
    import pandas as pd

    from rsp_probe.backends.base import Backend
    from rsp_probe.experiments.common import Spec
    from rsp_probe.experiments.sampling import Sampled
    from rsp_probe.runs import Run

BASE = Condition("base", 0, 0.0)


def rsp_conditions(spec) -> list[Condition]:
    return [Condition(f"k{k}", k, 0.0) for k in sorted(set(spec.rsp.rsp_tokens))]


def run_influence(spec: Spec, model: Backend | None = None) -> tuple[Run, pd.DataFrame]:
    from rsp_probe.analysis.summaries import influence_summary
    from rsp_probe.experiments.sampling import sample_conditions

    session = Session(spec, model)
    with session:
        base = sample_conditions(session, [BASE], samples=1)
        forced = _teacher_force(session, base)
        session.writer.write_trajectories(base.records + forced.records,
                                          {**base.rsp, **forced.rsp},
                                          {**base.steps, **forced.steps})
        run = session.finish()
    return run, influence_summary(run)


def _teacher_force(session: Session, base: Sampled) -> Sampled:
    """Every (condition, prompt) group of draws against its prompt's base continuation."""
    from rsp_probe.controls import BLOCKED_LAWS
    from rsp_probe.experiments.sampling import Sampled, build_jobs
    from rsp_probe.probes.influence import influence_batch

    model, spec = session.model, session.spec
    continuation = {r["prompt_id"]: r["generated_token_ids"] for r in base.records}
    jobs, records = build_jobs(session, rsp_conditions(spec), spec.sampling.samples)
    steps, text = {}, {}
    key = lambda pair: (pair[1]["prompt_id"], pair[1]["condition"])
    for (prompt_id, _), group in groupby(zip(jobs, records), key=key):
        group_jobs = [job for job, _ in group]
        tokens = continuation[prompt_id]
        for start in range(0, len(group_jobs), spec.sampling.batch_size):
            chunk = group_jobs[start:start + spec.sampling.batch_size]
            steps.update(influence_batch(model, chunk, tokens,
                                         block_rsp=spec.rsp.law in BLOCKED_LAWS))
        text[prompt_id] = model.tokenizer.decode(tokens, skip_special_tokens=True)
    for record in records:
        tokens = continuation[record["prompt_id"]]
        record.update(generated_token_ids=tokens, text=text[record["prompt_id"]],
                      stop_reason="teacher_forced", n_steps=len(tokens), answer=None,
                      correct=None, temperature=None)
    return Sampled(records, {job.id: job.rsp.numpy() for job in jobs}, steps)


EXPERIMENT = register_experiment(Experiment(
    name="influence",
    help="teacher-forced KL / TV / entropy shift of RSP draws along the greedy baseline",
    run=run_influence, describe="rsp_probe.analysis.summaries:describe_influence",
    defaults={"rsp_tokens": (4, 16), "samples": 8, "temperature": 0.0},
    figures=("influence",), theory="rsp_probe.analysis.theory_report:scaling_section",
    summarize="rsp_probe.analysis.summaries:influence_summary"))
