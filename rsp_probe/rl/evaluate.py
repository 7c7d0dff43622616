"""The probes run on each checkpoint, on held-out problems, reusing the toolkit's pieces:
the sampler with its entropy and RSP-attention probes, teacher-forced influence
(probes.influence), unbiased Pass@k (analysis.pass_at_k), diversity and strategies
(analysis.diversity, tasks.strategies), the early/middle/late windows (analysis.windows).

Every checkpoint is probed on the same problems with the same seeds and the same RSP draws
(common random numbers), so changes along training are paired. Conditions: `temp` (no RSP),
`rsp+temp` (a fresh RSP per sample, k and law as everywhere else) and `greedy` (accuracy).
Rows: step, condition, prompt_id, metric, value (one value per prompt: the prompt is the unit
that CIs resample)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rsp_probe.analysis.diversity import prompt_diversity
from rsp_probe.analysis.pass_at_k import pass_at_k
from rsp_probe.analysis.windows import WINDOWS, in_window
from rsp_probe.probes.influence import influence_batch
from rsp_probe.probes.names import ATTENTION_PROBE
from rsp_probe.rsp import derive_seed, draw_rsp, place_rsp
from rsp_probe.sampler import Job, generate
from rsp_probe.tasks.grading import grade
from rsp_probe.tasks.prompts import encode_problem
from rsp_probe.tasks.strategies import strategy_labels

CONDITIONS = ("greedy", "temp", "rsp+temp")  # greedy first: its continuation is the
# one influence is measured along


@dataclass(frozen=True)
class EvalSettings:
    k: int
    samples: int  # per problem and sampled condition; Pass@k for every k in ks
    ks: tuple[int, ...]
    temperature: float
    max_new_tokens: int
    placement: str
    batch_size: int
    chat: bool
    seed: int


def evaluate(model, problems, data, settings: EvalSettings, step: int
             ) -> tuple[list[dict], list[dict]]:
    """(metric rows, trajectory records) of one checkpoint."""
    from rsp_probe.rl.rollouts import rsp_law_of

    law = rsp_law_of(model)
    rows, records, greedy_ids = [], [], {}
    for condition in CONDITIONS:
        jobs, encoded = _jobs(model, problems, settings, condition, law)
        probes = ("logits", "rsp_attention") if condition == "rsp+temp" else ("logits",)
        trajectories = generate(model, jobs, settings.max_new_tokens, probes=probes,
                                batch_size=settings.batch_size)
        texts = [model.tokenizer.decode(t.generated_token_ids, skip_special_tokens=True)
                 for t in trajectories]
        per = len(jobs) // len(problems)
        grades = grade(data, texts, [p.answer for p in problems for _ in range(per)])
        strategies = strategy_labels(data, texts)
        for index, problem in enumerate(problems):
            span = range(index * per, (index + 1) * per)
            found = [trajectories[r] for r in span]
            correct = [bool(grades[r].correct) for r in span]
            base = {"step": step, "condition": condition, "prompt_id": problem.id}
            metrics = _metrics(found, correct, [grades[r].answer for r in span],
                               None if strategies is None else [strategies[r] for r in span],
                               settings)
            rows += [{**base, "metric": name, "value": value} for name, value in metrics.items()]
            records += [{**base, "sample": r - span[0], "text": texts[r], "correct": correct[i],
                         "stop_reason": trajectories[r].stop_reason,
                         "strategy": None if strategies is None else strategies[r]}
                        for i, r in enumerate(span)]
            if condition == "greedy":
                greedy_ids[problem.id] = found[0].generated_token_ids
            if condition == "rsp+temp":
                rsp_jobs = [jobs[r] for r in span]
                influence = _influence(model, rsp_jobs, greedy_ids.get(problem.id))
                rows += [{**base, "metric": name, "value": value}
                         for name, value in influence.items()]
    return rows, records


def _jobs(model, problems, settings: EvalSettings, condition: str, law):
    k = settings.k if condition == "rsp+temp" else 0
    temperature = 0.0 if condition == "greedy" else settings.temperature
    samples = 1 if condition == "greedy" else settings.samples
    empty = torch.zeros(0, model.info.d_model)
    jobs, encoded_all = [], []
    for problem in problems:
        encoded = encode_problem(model.tokenizer, problem, settings.chat)
        ids, positions = place_rsp(encoded, k, settings.placement)
        encoded_all.append(encoded)
        for sample in range(samples):
            # the same seeds at every checkpoint and in both conditions (paired)
            vectors = draw_rsp(law, k, derive_seed(settings.seed, "eval-rsp", problem.id,
                                                   sample)) if k else empty
            jobs.append(Job(f"{condition}/{problem.id}/{sample}", ids, positions, vectors,
                            temperature, 1.0,
                            seed=derive_seed(settings.seed, "eval", problem.id, sample),
                            n_cue=len(encoded.cue)))
    return jobs, encoded_all


def _metrics(trajectories, correct, answers, strategies, settings: EvalSettings) -> dict:
    n = len(correct)
    metrics = {"accuracy": float(np.mean(correct)),
               "length": float(np.mean([len(t.generated_token_ids) for t in trajectories]))}
    if n > 1:
        metrics.update({f"pass@{k}": pass_at_k(n, sum(correct), k) for k in settings.ks
                        if k <= n})
        diversity = prompt_diversity([t.generated_token_ids for t in trajectories], answers,
                                     strategies)
        metrics.update({name: diversity[name] for name in ("distinct_strategies",
                                                            "edit_distance", "distinct_answers")
                        if np.isfinite(diversity[name])})
    entropy = [t.steps["entropy"] for t in trajectories]
    for window in WINDOWS:
        values = [e[in_window(window, np.arange(1, len(e) + 1), len(e))].mean()
                  for e in entropy if in_window(window, np.arange(1, len(e) + 1), len(e)).any()]
        if values:
            metrics[f"entropy_{window}"] = float(np.mean(values))
    metrics["entropy_all"] = float(np.mean([e.mean() for e in entropy if len(e)]))
    attention = [t.steps[ATTENTION_PROBE] for t in trajectories
                 if ATTENTION_PROBE in t.steps and len(t.steps[ATTENTION_PROBE])]
    if attention:
        metrics["rsp_attention"] = float(np.mean([a.mean() for a in attention]))
    return metrics


def _influence(model, jobs, continuation) -> dict:
    """KL(p_rsp || p_base) along the greedy no-RSP continuation, mean over steps and draws."""
    if not continuation or not jobs[0].rsp_positions:
        return {}
    values = influence_batch(model, jobs, list(continuation))
    return {"influence_kl": float(np.mean([v["kl"].mean() for v in values.values()]))}
