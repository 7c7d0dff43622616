"""`rsp-probe influence`: teacher-forced KL, TV, entropy shift and top-1 agreement of RSP
draws along each prompt's baseline greedy continuation."""

from __future__ import annotations

from itertools import groupby

import torch

from rsp_probe.config import Condition
from rsp_probe.experiments.common import Session, build_spec
from rsp_probe.experiments.sampling import Sampled, build_jobs, sample_conditions
from rsp_probe.probes.influence import influence_values, teacher_forced
from rsp_probe.probes.names import ATTENTION_PROBE
from rsp_probe.rsp import build_inputs_embeds

BASE = Condition("base", 0, 0.0)


def rsp_conditions(spec) -> list[Condition]:
    return [Condition(f"k{k}", k, 0.0) for k in sorted(set(spec.rsp.rsp_tokens))]


def run_influence(spec, model=None):
    from rsp_probe.analysis.summaries import influence_summary

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
            steps.update(_influence_batch(model, chunk, tokens))
        text[prompt_id] = model.tokenizer.decode(tokens, skip_special_tokens=True)
    for record in records:
        tokens = continuation[record["prompt_id"]]
        record.update(generated_token_ids=tokens, text=text[record["prompt_id"]],
                      stop_reason="teacher_forced", n_steps=len(tokens), answer=None,
                      correct=None, temperature=None)
    return Sampled(records, {job.id: job.rsp.numpy() for job in jobs}, steps)


def _influence_batch(model, jobs, continuation: list[int]) -> dict:
    """Draws of one prompt and condition; the base input is replicated to the same batch
    shape, so a k=0 'draw' reproduces the base logits bit for bit."""
    table = model.embedding_table
    forced = torch.tensor(continuation[:-1], dtype=torch.long)
    forced_embeds = table[forced.to(table.device)]
    base_ids = [i for i in jobs[0].input_ids if i >= 0]
    base_embeds = build_inputs_embeds(table, base_ids, [], jobs[0].rsp[:0])
    base_batch = torch.cat([base_embeds, forced_embeds])[None].expand(len(jobs), -1, -1)
    rsp_batch = torch.stack([torch.cat([build_inputs_embeds(table, job.input_ids,
                                                            job.rsp_positions, job.rsp),
                                        forced_embeds]) for job in jobs])
    n_steps = len(continuation)
    base_logits, _ = teacher_forced(model, base_batch.contiguous(), len(base_ids) - 1, n_steps, [])
    rsp_logits, attention = teacher_forced(model, rsp_batch, len(jobs[0].input_ids) - 1,
                                           n_steps, jobs[0].rsp_positions)
    values = {name: v.cpu().numpy() for name, v in
              influence_values(base_logits, rsp_logits).items()}
    out = {}
    for row, job in enumerate(jobs):
        out[job.id] = {name: v[row] for name, v in values.items()}
        if attention is not None:
            out[job.id][ATTENTION_PROBE] = attention[row].cpu().numpy()
    return out


def influence(model=None, **options):
    """Python API: `rsp_probe.influence(n_prompts=4, samples=8, rsp_tokens=(4, 16))`."""
    loaded = model if hasattr(model, "bridge") else None
    spec = build_spec("influence", model=None if loaded else model, **options)
    return run_influence(spec, loaded)
