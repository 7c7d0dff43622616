"""`rsp-probe influence`: teacher-forced KL, TV, entropy shift and top-1 agreement of RSP
draws along each prompt's baseline greedy continuation."""

from __future__ import annotations

from itertools import groupby
from typing import TYPE_CHECKING

from rsp_probe.config import Condition
from rsp_probe.experiments.base import Experiment, register_experiment
from rsp_probe.experiments.common import Session
from rsp_probe.experiments.plan_sizes import MAIN
from rsp_probe.probes.base import DEFAULT_PROBES

if TYPE_CHECKING:
    import pandas as pd

    from rsp_probe.backends.base import Backend
    from rsp_probe.experiments.common import Spec
    from rsp_probe.runs import Run

BASE = Condition("base", 0, 0.0)


def rsp_conditions(spec) -> list[Condition]:
    return [Condition(f"k{k}", k, 0.0) for k in sorted(set(spec.rsp.rsp_tokens))]


def run_influence(spec: Spec, model: Backend | None = None) -> tuple[Run, pd.DataFrame]:
    """Streamed like the sampling experiments: the base continuations are sampled into the
    first parts, then each teacher-forced batch becomes a part (--resume skips the parts
    done). trajectories.jsonl is prompt-major (each prompt's base line, then its draws), so
    a shard's prompts are contiguous and `merge` restores the single-process order."""
    from rsp_probe.analysis.summaries import influence_summary
    from rsp_probe.experiments.sampling import stream_conditions

    session = Session(spec, model)
    with session:
        per_prompt = sum(c.n_samples(spec.sampling.samples) for c in rsp_conditions(spec))
        session.plan_progress([(BASE, 1)] + [(c, spec.sampling.samples)
                                             for c in rsp_conditions(spec)])
        base_parts = stream_conditions(session, [BASE], samples=1, merge=False,
                                       order=lambda prompt: prompt * (per_prompt + 1))
        _teacher_force(session, base_parts, per_prompt)
        session.writer.merge_parts()
        run = session.finish()
    return run, influence_summary(run)


def _teacher_force(session: Session, base_parts: int, per_prompt: int) -> None:
    """Every (condition, prompt) group of draws against its prompt's base continuation, in
    batches that become parts base_parts, base_parts + 1, ..."""
    from rsp_probe.experiments.sampling import build_jobs, rsp_law, with_vectors
    from rsp_probe.probes.influence import influence_batch
    from rsp_probe.runio.parts import ORDER_KEY, part_records
    from rsp_probe.runs import kill_point

    model, spec, writer = session.model, session.spec, session.writer
    law = rsp_law(session)
    jobs, records = build_jobs(session, rsp_conditions(spec), spec.sampling.samples, law=law,
                               draw=False)
    done = set(writer.resumed_batches)
    continuation = None  # read only when a batch is left to do: a merged run has no parts
    progress, budget = session.progress, spec.sampling.max_new_tokens
    if progress is not None:  # teacher-forced draws count as trajectories too
        progress.expect(len(jobs), budget)
    for number, indices in enumerate(_batches(records, spec.sampling.batch_size), base_parts):
        if number in done:
            if progress is not None:
                progress.advance(0, finished=len(indices), unused=len(indices) * budget)
            continue
        if continuation is None:
            continuation = {r["prompt_id"]: r["generated_token_ids"]
                            for r in part_records(writer.staging, range(base_parts))}
        kill_point(f"batch-{number}-prefill")
        chunk = [with_vectors(law, jobs[i], records[i]["rsp_seed"]) for i in indices]
        tokens = continuation[records[indices[0]]["prompt_id"]]
        steps = influence_batch(model, chunk, tokens, block_rsp=law.blocks_rsp_keys)
        text = model.tokenizer.decode(tokens, skip_special_tokens=True)
        forced = []
        for i in indices:  # draw i of prompt i // per_prompt comes after that prompt's base
            record = {**records[i], ORDER_KEY: i + i // per_prompt + 1}
            record.update(generated_token_ids=tokens, text=text, stop_reason="teacher_forced",
                          n_steps=len(tokens), answer=None, correct=None, temperature=None)
            forced.append(record)
        writer.write_part(number, forced, {job.id: job.rsp.numpy() for job in chunk}, steps)
        if progress is not None:
            forced_tokens = min(len(tokens), budget)
            progress.advance(len(chunk) * forced_tokens, finished=len(chunk),
                             unused=len(chunk) * (budget - forced_tokens))


def _batches(records, size: int):
    """Job indices in batches that share a prompt and condition (so one continuation)."""
    group = lambda i: (records[i]["prompt_id"], records[i]["condition"])
    for _, indices in groupby(range(len(records)), key=group):
        indices = list(indices)
        for start in range(0, len(indices), size):
            yield indices[start:start + size]


EXPERIMENT = register_experiment(Experiment(
    name="influence",
    help="teacher-forced KL / TV / entropy shift of RSP draws along the greedy baseline",
    run=run_influence, describe="rsp_probe.analysis.summaries:describe_influence",
    defaults={"rsp_tokens": (4, 16), "samples": 8, "temperature": 0.0},
    figures=("influence",),
    probes=DEFAULT_PROBES, claims=("rsp_probe.claims.mechanism", "rsp_probe.claims.theory"),
    reproduce=(("influence", dict(MAIN, rsp_tokens=(4, 16), samples=8)),),
    theory="rsp_probe.analysis.theory_report:scaling_section",
    summarize="rsp_probe.analysis.summaries:influence_summary"))
