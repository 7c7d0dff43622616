"""Groups of rollouts: G samples per problem through the toolkit's sampler, each with its own
fresh RSP draw (the RSP arm) placed as at inference, graded by the task's own grader."""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from rsp_probe.rl.dapo import soft_overlong_penalty
from rsp_probe.rsp import derive_seed, draw_rsp, fit_law, place_rsp
from rsp_probe.sampler import Job, generate
from rsp_probe.tasks.grading import grade
from rsp_probe.tasks.prompts import encode_problem

TRUNCATED = ("max_new_tokens", "context")  # stop reasons of a rollout cut off by a limit


@dataclass
class Group:
    """One problem's G rollouts."""

    problem_id: str
    inputs: list[list[int]]  # model input with -1 at the RSP slots, per rollout
    rsp_positions: list[int]
    rsp: list[torch.Tensor]  # [k, D] per rollout
    completions: list[list[int]]
    truncated: list[bool]
    correct: list[bool]
    rewards: list[float]

    @property
    def mixed(self) -> bool:
        return len(set(self.rewards)) > 1


@dataclass(frozen=True)
class RolloutSettings:
    k: int  # RSP vectors per rollout (0: the no-RSP arm)
    group_size: int
    temperature: float
    top_p: float
    max_new_tokens: int
    placement: str
    overlong: str  # "filter" | "penalty" | "none"
    overlong_cache: int
    batch_size: int
    chat: bool


def rsp_law_of(model):
    """The Gaussian law fitted to the model's current input-embedding table."""
    return fit_law(model.embedding_table)


def sample_groups(model, problems, settings: RolloutSettings, data, seed_parts: tuple
                  ) -> list[Group]:
    """G rollouts per problem; every draw and sampling seed derives from `seed_parts`, the
    problem id and the sample index, so a resumed run repeats them exactly."""
    law = rsp_law_of(model) if settings.k else None
    empty = torch.zeros(0, model.info.d_model)
    jobs, prompts = [], []
    for problem in problems:
        encoded = encode_problem(model.tokenizer, problem, settings.chat)
        ids, positions = place_rsp(encoded, settings.k, settings.placement)
        prompts.append((ids, positions))
        for g in range(settings.group_size):
            vectors = (draw_rsp(law, settings.k, derive_seed(*seed_parts, "rsp", problem.id, g))
                       if settings.k else empty)
            jobs.append(Job(f"{problem.id}/{g}", ids, positions, vectors,
                            settings.temperature, settings.top_p,
                            seed=derive_seed(*seed_parts, "sample", problem.id, g),
                            n_cue=len(encoded.cue)))
    trajectories = generate(model, jobs, settings.max_new_tokens, probes=(),
                            batch_size=settings.batch_size)
    texts = [model.tokenizer.decode(t.generated_token_ids, skip_special_tokens=True)
             for t in trajectories]
    references = [p.answer for p in problems for _ in range(settings.group_size)]
    grades = grade(data, texts, references)
    groups = []
    for index, problem in enumerate(problems):
        rows = range(index * settings.group_size, (index + 1) * settings.group_size)
        ids, positions = prompts[index]
        completions = [trajectories[r].generated_token_ids for r in rows]
        truncated = [trajectories[r].stop_reason in TRUNCATED for r in rows]
        correct = [bool(grades[r].correct) for r in rows]  # ungraded counts as wrong
        groups.append(Group(problem.id, [ids] * len(rows), positions,
                            [jobs[r].rsp for r in rows], completions, truncated, correct,
                            rewards(correct, completions, settings)))
    return groups


def rewards(correct: list[bool], completions: list[list[int]],
            settings: RolloutSettings) -> list[float]:
    """1 for a correct answer, else 0; plus DAPO's soft overlong penalty when asked."""
    values = torch.tensor([1.0 if c else 0.0 for c in correct], dtype=torch.float64)
    if settings.overlong == "penalty":
        lengths = torch.tensor([len(c) for c in completions])
        values = values + soft_overlong_penalty(lengths, settings.max_new_tokens,
                                                settings.overlong_cache)
    return values.tolist()


def dynamic_sample(model, pool, settings: RolloutSettings, data, n_groups: int,
                   max_rounds: int, seed: int, step: int) -> tuple[list[Group], dict]:
    """DAPO's dynamic sampling: sample n_groups problems at a time and keep the groups with
    mixed rewards, until n_groups are kept or max_rounds rounds have been sampled."""
    kept: list[Group] = []
    sampled: list[Group] = []
    for round_ in range(max_rounds):
        picks = random.Random(derive_seed(seed, "problems", step, round_)).sample(
            range(len(pool)), n_groups)
        groups = sample_groups(model, [pool[i] for i in picks], settings, data,
                               (seed, "rl", step, round_))
        sampled += groups
        kept += [g for g in groups if g.mixed]
        if len(kept) >= n_groups:
            break
    stats = {"rounds": round_ + 1, "groups_sampled": len(sampled), "groups_kept":
             min(len(kept), n_groups),
             "reward_mean": _mean([r for g in sampled for r in g.rewards]),
             "accuracy": _mean([float(c) for g in sampled for c in g.correct]),
             "truncated": _mean([float(t) for g in sampled for t in g.truncated]),
             "length": _mean([float(len(c)) for g in sampled for c in g.completions])}
    return kept[:n_groups], stats


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
