"""Run conditions x prompts x samples through the sampler and shape the contract records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from rsp_probe.config import Condition
from rsp_probe.errors import UsageError
from rsp_probe.experiments.common import Session, announce
from rsp_probe.probes.base import DEFAULT_PROBES
from rsp_probe.registry import LAWS
from rsp_probe.rsp import derive_seed, fit_law, place_rsp, trajectory_draw_seed
from rsp_probe.sampler import Job, generate
from rsp_probe.tasks.grading import grade
from rsp_probe.tasks.prompts import encode_problem
from rsp_probe.tasks.strategies import strategy_labels


@dataclass
class Sampled:
    """Everything a run directory needs about its trajectories."""

    records: list[dict]
    rsp: dict[str, np.ndarray]
    steps: dict[str, dict[str, np.ndarray]]


def rsp_law(session: Session, law: str | None = None, sigma_scale: float | None = None):
    """The run's law (or `law`, at `sigma_scale`), fitted to the loaded model; a law that
    needs a soft prompt reads --soft-prompt."""
    model, rsp = session.model, session.spec.rsp
    tokenizer = model.tokenizer
    law = law or rsp.law
    prompt = None
    if rsp.soft_prompt and LAWS.get(law).needs_soft_prompt:
        from rsp_probe.soft_prompts.io import load_soft_prompt

        prompt, _ = load_soft_prompt(rsp.soft_prompt)
    scale = rsp.sigma_scale if sigma_scale is None else sigma_scale
    return fit_law(model.embedding_table, law, scale, prompt=prompt,
                   special_ids=set(tokenizer.all_special_ids), n_real_tokens=len(tokenizer))


def encoded_prompts(session: Session):
    fmt = session.prompt_format
    return [encode_problem(session.model.tokenizer, p, fmt) for p in session.problems]


def build_jobs(session: Session, conditions: list[Condition], samples: int, law=None,
               draw: bool = True):
    """One Job per (condition, prompt, sample) plus its record skeleton. With draw=False
    (streaming) the RSP vectors are left empty, to be drawn batch by batch (`draw_batch`),
    and the skeletons stay RecordSkeletons (built on demand) instead of a list of dicts."""
    spec, model = session.spec, session.model
    law = law or rsp_law(session)
    empty = torch.zeros(0, model.info.d_model)
    jobs, records = [], RecordSkeletons()
    for prompt, problem in zip(encoded_prompts(session), session.problems):
        for condition in conditions:
            added = not law.slots and condition.rsp_tokens > 0  # no slots: added to inputs
            ids, positions = place_rsp(prompt, 0 if added else condition.rsp_tokens,
                                       spec.rsp.placement)
            _check_context(problem.id, len(ids), model.info.n_ctx)
            group = records.add_group({
                "prompt_id": problem.id, "condition": condition.name,
                "rsp_tokens": condition.rsp_tokens, "temperature": condition.temperature,
                "prompt_token_ids": prompt.token_ids, "rsp_positions": positions,
                "cue_tokens": len(prompt.cue), "reference_answer": problem.answer})
            for sample in range(condition.n_samples(samples)):
                draw_seed = trajectory_draw_seed(spec.sampling.seed, problem.id, sample,
                                                 spec.rsp.fixed_draw)
                seed = derive_seed(spec.sampling.seed, "sample", problem.id, sample)
                vectors = (job_vectors(law, len(ids), condition.rsp_tokens, draw_seed, added)
                           if draw else empty)
                jobs.append(Job(records.add(group, sample, seed, draw_seed), ids, positions,
                                vectors, condition.temperature, condition.top_p, seed,
                                n_cue=len(prompt.cue), rsp_added=added))
    return jobs, (list(records) if draw else records)


class RecordSkeletons(Sequence):
    """The jobs' record skeletons, each dict built when asked for: the fields shared by a
    (prompt, condition) group are kept once and a job holds a small tuple, so a streamed
    run holds ~150 bytes per trajectory until its batch comes, not a ~700-byte dict."""

    def __init__(self):
        self.groups: list[dict] = []
        self.rows: list[tuple[int, int, int, int]] = []  # (group, sample, seed, rsp_seed)

    def add_group(self, shared: dict) -> int:
        self.groups.append(shared)
        return len(self.groups) - 1

    def add(self, group: int, sample: int, seed: int, draw_seed: int) -> str:
        """Append a job's skeleton; returns the job id."""
        self.rows.append((group, sample, seed, draw_seed))
        return self._job_id(self.groups[group], sample)

    @staticmethod
    def _job_id(shared: dict, sample: int) -> str:
        return f"{shared['condition']}/{shared['prompt_id']}/{sample}"

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        group, sample, seed, draw_seed = self.rows[index]
        shared = self.groups[group]
        return {"id": self._job_id(shared, sample), "prompt_id": shared["prompt_id"],
                "condition": shared["condition"], "sample": sample, "seed": seed,
                "rsp_seed": draw_seed, **{key: shared[key] for key in list(shared)[2:]}}


def job_vectors(law, n_input: int, k: int, seed: int, added: bool):
    """The RSP draw [k, d], or a slotless law's draw [n_input, d] added to the inputs."""
    return law.draw(n_input if added else k, seed)


def with_vectors(law, job: Job, rsp_seed: int) -> Job:
    """A job of build_jobs(draw=False) with its RSP vectors drawn (from its record's seed)."""
    return replace(job, rsp=job_vectors(law, len(job.input_ids), len(job.rsp_positions),
                                        rsp_seed, job.rsp_added))


def law_interventions(law) -> list:
    """A law (a --law name, a Law class or a fitted law) that blocks the RSP keys
    (positions-only): they are knocked out for every query from step 1."""
    if not (LAWS.get(law) if isinstance(law, str) else law).blocks_rsp_keys:
        return []
    from rsp_probe.interventions.knockout import knockout_factory
    from rsp_probe.interventions.spec import Knockout

    return [knockout_factory(Knockout(1))]


def _check_context(prompt_id: str, n_input: int, n_ctx: int) -> None:
    if n_input >= n_ctx:
        raise UsageError(f"prompt {prompt_id}: {n_input} input positions (RSP included) do not "
                         f"fit the model's context of {n_ctx} with room to generate")


def declared_probes(command: str) -> tuple[str, ...]:
    """The probes the command's experiment declares (Experiment.probes), else the defaults."""
    from rsp_probe.registry import EXPERIMENTS

    experiment = EXPERIMENTS.entries().get(command)
    return tuple(getattr(experiment, "probes", ())) or DEFAULT_PROBES


def stream_conditions(session: Session, conditions: list[Condition], samples: int,
                      probes: Sequence[str] | None = None, order=lambda index: index,
                      merge: bool = True) -> int:
    """Sample every condition into the run's staging directory as part files (stream_jobs):
    memory O(batch), batches done before an interruption skipped (--resume). `order(job
    index)`: the record's place in trajectories.jsonl; merge=False leaves the parts for more
    (the caller merges); `probes`: the experiment's declared ones unless given. Returns the
    parts used."""
    spec = session.spec
    law = rsp_law(session)
    jobs, records = build_jobs(session, conditions, samples, law=law, draw=False)
    announce(len(session.problems), len(jobs), conditions, spec.sampling.max_new_tokens,
             spec.output.quiet)
    parts = stream_jobs(session, jobs, records, law, order=order, probes=probes,
                        interventions=law_interventions(spec.rsp.law))
    if merge:
        session.writer.merge_parts()
    return parts


def stream_jobs(session: Session, jobs: list[Job], records: RecordSkeletons, law, *,
                first_part: int = 0, order=lambda index: index,
                probes: Sequence[str] | None = None, interventions=(),
                complete=None) -> int:
    """Decode `jobs` (build_jobs(draw=False); `records` their skeletons) with one generate
    call, each finished batch written as part first_part + b (rsp_probe.runio.parts) and
    dropped. RSP vectors are drawn per batch from their recorded seeds; the parts done
    before an interruption are skipped (--resume). `complete(jobs, sampled)` may add to a
    batch's records and steps (a teacher-forced pass, an experiment's fields) before it is
    written. An experiment decoding in phases calls this once per phase, each phase's
    parts after the last. Returns the number of parts (generate's batches)."""
    from rsp_probe.runio.parts import ORDER_KEY
    from rsp_probe.runs import kill_point

    spec, writer = session.spec, session.writer
    n_parts = -(-len(jobs) // spec.sampling.batch_size)
    drawn = {}  # the current batch's jobs with their vectors

    def draw_batch(number, indices, batch_jobs):
        kill_point(f"batch-{first_part + number}-prefill")
        drawn[number] = [with_vectors(law, job, records[i]["rsp_seed"])
                         for i, job in zip(indices, batch_jobs)]
        return drawn[number]

    def write_batch(number, indices, trajectories):
        batch_jobs = drawn.pop(number)
        batch = finish_records(session, batch_jobs, [{**records[i], ORDER_KEY: order(i)}
                                                     for i in indices], trajectories)
        if complete is not None:
            complete(batch_jobs, batch)
        writer.write_part(first_part + number, batch.records, batch.rsp, batch.steps)

    done = frozenset(number - first_part for number in writer.resumed_batches
                     if first_part <= number < first_part + n_parts)
    generate(session.model, jobs, spec.sampling.max_new_tokens,
             batch_size=spec.sampling.batch_size,
             probes=declared_probes(spec.command) if probes is None else probes,
             progress=session.progress,
             prepare_batch=draw_batch, on_batch=write_batch, skip_batches=done,
             interventions=interventions)
    return n_parts


def phase_tokens(session: Session, parts: range) -> dict[tuple[str, int], list[int]]:
    """(prompt_id, sample) -> generated token ids of the trajectories in `parts`: an earlier
    phase's tokens that a later phase is teacher-forced along, read back from its parts
    (so also after a --resume that skipped them). Call it only while a batch is decoded:
    a merged run has no parts left."""
    from rsp_probe.runio.parts import part_records

    tokens = {}
    for number in parts:  # one part in memory at a time
        for record in part_records(session.writer.staging, [number]):
            tokens[(record["prompt_id"], record["sample"])] = record["generated_token_ids"]
    return tokens


def sample_and_write(spec, model, conditions: list[Condition], derived=None,
                     probes: Sequence[str] | None = None, measured=None):
    """The shape of every sampling experiment: sample the conditions batch by batch into
    the staging directory, merge the parts into the contract files, write the files
    `measured(session)` computes with the model and those `derived(staged run)` computes
    without it ({name: table or JSON}), then publish the run."""
    session = Session(spec, model)
    with session:
        stream_conditions(session, conditions, spec.sampling.samples, probes)
        if measured is not None:
            session.writer.write_derived(measured(session))
        if derived is not None:
            session.writer.write_derived(derived(session.writer.staged_run()))
        return session.finish()


def finish_records(session, jobs, records, trajectories) -> Sampled:
    tokenizer = session.model.tokenizer
    texts = [tokenizer.decode(t.generated_token_ids, skip_special_tokens=True)
             for t in trajectories]
    graded = grade(session.spec.data, texts, [r["reference_answer"] for r in records],
                   answer_format=session.prompt_format.template.to_dict()["answer_format"])
    strategies = strategy_labels(session.spec.data, texts)
    for i, (record, trajectory, text, result) in enumerate(
            zip(records, trajectories, texts, graded)):
        record.update(generated_token_ids=trajectory.generated_token_ids, text=text,
                      stop_reason=trajectory.stop_reason,
                      n_steps=len(trajectory.generated_token_ids), answer=result.answer,
                      correct=result.correct, grade_error=result.error)
        if strategies is not None:
            record["strategy"] = strategies[i]
    return Sampled(records, {job.id: job.rsp.numpy() for job in jobs},
                   {t.id: t.steps for t in trajectories})
