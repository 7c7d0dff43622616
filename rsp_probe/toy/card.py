"""The toy model's quality, measured on the held-out test split, for its model card.

`rsp-probe model-card --model DIR` re-measures every number the card states (any seed
gives the same numbers up to sampling error). Three kinds of run, none with an RSP except
the rows reported as facts:
- greedy decoding, clean and with 4 random real tokens after the question;
- 16 samples per problem at temperature 1: accuracy, pass@8, the per-token entropy along
  those trajectories, the entropy of steps 1-3, the strategies they follow, accuracy per
  strategy;
- greedy decoding with a Gaussian RSP (k = 4, 16; suffix and prefix), facts and not targets.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rsp_probe.analysis.pass_at_k import pass_at_k
from rsp_probe.analysis.stats import bootstrap_mean
from rsp_probe.config import Condition
from rsp_probe.experiments.common import Session, build_spec
from rsp_probe.experiments.sampling import build_jobs
from rsp_probe.probes.base import LOGIT_ONLY_PROBES
from rsp_probe.sampler import generate
from rsp_probe.tasks.grading import grade
from rsp_probe.tasks.strategies import OTHER, STRATEGIES, strategy_of
from rsp_probe.toy.card_text import quality_table, targets, write_card

__all__ = ["measure_quality", "quality_table", "targets", "write_card"]

MAX_NEW_TOKENS = 112  # the longest reference solution of the default task is under 90 tokens
SAMPLES = 16  # at temperature 1; pass@8 and "strategies among 8" use them
HIGH_ENTROPY = 0.5  # nats: a fork
# name -> (law, placement, k); all greedy, one trajectory per problem (a fresh RSP draw each)
GREEDY_ROWS = {
    "greedy accuracy": ("gaussian", "suffix", 0),
    "4 random real tokens after the question (greedy)": ("tokens", "suffix", 4),
    "Gaussian RSP k=4, suffix (greedy)": ("gaussian", "suffix", 4),
    "Gaussian RSP k=16, suffix (greedy)": ("gaussian", "suffix", 16),
    "Gaussian RSP k=4, prefix (greedy)": ("gaussian", "prefix", 4),
    "Gaussian RSP k=16, prefix (greedy)": ("gaussian", "prefix", 16),
}
NOISE_ROW = "4 random real tokens after the question (greedy)"


def measure_quality(model, n_prompts: int = 200, seed: int = 0, quiet: bool = True) -> dict:
    """Every row of the card: {"mean", "ci_low", "ci_high", "n_problems"} (95% CIs over
    problems), plus "accuracy per strategy" with one such entry per strategy."""
    base = build_spec("model-card", n_prompts=n_prompts, seed=seed,
                      max_new_tokens=MAX_NEW_TOKENS, quiet=quiet, rsp_tokens=(4,))
    results = {}
    for name, (law, placement, k) in GREEDY_ROWS.items():
        spec = _spec(base, law, placement, k, samples=1, temperature=0.0)
        sampled = _sample(Session(spec, model, write=False), Condition(name, k, 0.0), 1)
        results[name] = _mean_ci(sampled["correct"][:, 0])
    clean = results["greedy accuracy"]["mean"]
    results["robustness ratio (noise / clean greedy)"] = {
        "mean": results[NOISE_ROW]["mean"] / clean if clean else float("nan")}
    spec = _spec(base, "gaussian", "suffix", 0, samples=SAMPLES, temperature=1.0)
    sampled = _sample(Session(spec, model, write=False), Condition("temperature 1", 0, 1.0),
                      SAMPLES)
    results.update(_sampled_rows(sampled))
    return results


def _spec(base, law: str, placement: str, k: int, samples: int, temperature: float):
    return dataclasses.replace(
        base, rsp=dataclasses.replace(base.rsp, law=law, placement=placement, rsp_tokens=(k,)),
        sampling=dataclasses.replace(base.sampling, samples=samples, temperature=temperature))


def _sample(session: Session, condition: Condition, samples: int) -> dict:
    """correct [P, S], strategy [P, S] and per-token entropies [P][S] of one condition."""
    jobs, records = build_jobs(session, [condition], samples)
    trajectories = generate(session.model, jobs, session.spec.sampling.max_new_tokens,
                            batch_size=64, probes=LOGIT_ONLY_PROBES)
    texts = [session.model.tokenizer.decode(t.generated_token_ids, skip_special_tokens=True)
             for t in trajectories]
    graded = grade(session.spec.data, texts, [r["reference_answer"] for r in records],
                   answer_format=session.prompt_format.template.to_dict()["answer_format"])
    if any(g.correct is None for g in graded):  # arithmetic grading is pure Python
        raise RuntimeError("the card's arithmetic grading failed for some texts: "
                           + next(g.error for g in graded if g.correct is None))
    entropy = [np.asarray(t.steps["entropy"], dtype=float) for t in trajectories]
    return {"correct": np.array([g.correct for g in graded], dtype=float).reshape(-1, samples),
            "strategy": np.array([strategy_of(t) for t in texts]).reshape(-1, samples),
            "entropy": [entropy[i:i + samples] for i in range(0, len(entropy), samples)]}


def _sampled_rows(sampled: dict) -> dict:
    correct, strategy, entropy = sampled["correct"], sampled["strategy"], sampled["entropy"]
    tokens = [np.concatenate(per_prompt) for per_prompt in entropy]
    half = SAMPLES // 2
    distinct = [np.mean([len(set(row[:half]) - {OTHER}), len(set(row[half:]) - {OTHER})])
                for row in strategy]
    return {
        "accuracy at T=1 (n=16)": _mean_ci(correct.mean(axis=1)),
        "pass@8 at T=1 (n=16)": _mean_ci(np.array(
            [pass_at_k(SAMPLES, int(c), 8) for c in correct.sum(axis=1)])),
        "median per-token entropy at T=1 (nats)": _pooled(tokens, np.median),
        "share of tokens above 0.5 nats at T=1": _pooled(
            tokens, lambda values: float(np.mean(values > HIGH_ENTROPY))),
        "mean entropy of steps 1-3 at T=1 (nats)": _mean_ci(np.array(
            [np.mean([e[:3].mean() for e in per_prompt]) for per_prompt in entropy]),
            clip=False),
        "distinct strategies among 8 samples at T=1": _mean_ci(np.array(distinct), clip=False),
        "accuracy per strategy": _per_strategy(correct, strategy),
    }


def _per_strategy(correct: np.ndarray, strategy: np.ndarray) -> dict:
    """Accuracy of the T=1 samples that follow each strategy (a ratio over the problems that
    have any, with a bootstrap CI resampling problems) and the share of samples it takes."""
    rows = {}
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(correct), (2000, len(correct)))
    for name in (*STRATEGIES, OTHER):
        mask = strategy == name
        if not mask.any():
            rows[name] = {"mean": float("nan"), "share": 0.0, "n_samples": 0}
            continue
        hits, counts = (correct * mask).sum(axis=1), mask.sum(axis=1)
        boot = hits[picks].sum(axis=1) / np.maximum(counts[picks].sum(axis=1), 1)
        rows[name] = {"mean": float(hits.sum() / counts.sum()),
                      "ci_low": float(np.quantile(boot, 0.025)),
                      "ci_high": float(np.quantile(boot, 0.975)),
                      "share": float(mask.mean()), "n_samples": int(counts.sum())}
    return rows


def _pooled(per_prompt: list[np.ndarray], statistic) -> dict:
    """A statistic of all tokens pooled, with a bootstrap CI that resamples problems."""
    rng = np.random.default_rng(0)
    boot = [statistic(np.concatenate([per_prompt[i] for i in rng.integers(0, len(per_prompt),
                                                                          len(per_prompt))]))
            for _ in range(500)]
    return {"mean": float(statistic(np.concatenate(per_prompt))),
            "ci_low": float(np.quantile(boot, 0.025)), "ci_high": float(np.quantile(boot, 0.975)),
            "n_problems": len(per_prompt)}


def _mean_ci(per_problem: np.ndarray, clip: bool = True) -> dict:
    """Mean over problems with a percentile-bootstrap 95% CI (the project's bootstrap)."""
    mean, low, high = bootstrap_mean(per_problem)
    if clip:
        low, high = max(0.0, low), min(1.0, high)
    return {"mean": mean, "ci_low": low, "ci_high": high, "n_problems": len(per_problem)}
