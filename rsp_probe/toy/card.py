"""The toy model's quality, measured on the held-out test split, and its model card.

`rsp-probe model-card --model DIR` re-measures every number the card states (any seed
gives the same numbers up to sampling error).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from rsp_probe.analysis.pass_at_k import pass_at_k
from rsp_probe.config import Condition
from rsp_probe.experiments.common import Session, build_spec
from rsp_probe.experiments.sampling import build_jobs
from rsp_probe.probes.base import LOGIT_ONLY_PROBES
from rsp_probe.sampler import generate
from rsp_probe.tasks.grading import grade

# name -> (law, placement, k, temperature, samples); pass@8 needs n=16 samples.
MEASUREMENTS = {
    "greedy": ("gaussian", "suffix", 0, 0.0, 1),
    "temperature 0.7": ("gaussian", "suffix", 0, 0.7, 4),
    "temperature 1.0 (n=16; also pass@8)": ("gaussian", "suffix", 0, 1.0, 16),
    "4 random real tokens after the question (greedy)": ("tokens", "suffix", 4, 0.0, 1),
    "Gaussian RSP k=4, suffix (greedy)": ("gaussian", "suffix", 4, 0.0, 1),
    "Gaussian RSP k=16, suffix (greedy)": ("gaussian", "suffix", 16, 0.0, 1),
    "Gaussian RSP k=4, prefix (greedy)": ("gaussian", "prefix", 4, 0.0, 1),
    "Gaussian RSP k=16, prefix (greedy)": ("gaussian", "prefix", 16, 0.0, 1),
}
PASS8_ROW = "temperature 1.0 (n=16; also pass@8)"
NOISE_ROW = "4 random real tokens after the question (greedy)"


def measure_quality(model, n_prompts: int = 200, seed: int = 0, quiet: bool = True) -> dict:
    """Accuracy (mean over problems) with a 95% CI for each measurement, pass@8 and the
    robustness ratio. Greedy rows with an RSP use a fresh draw per problem."""
    base = build_spec("model-card", n_prompts=n_prompts, seed=seed, max_new_tokens=96,
                      quiet=quiet, rsp_tokens=(4,))
    results = {}
    for name, (law, placement, k, temperature, samples) in MEASUREMENTS.items():
        spec = dataclasses.replace(
            base, rsp=dataclasses.replace(base.rsp, law=law, placement=placement, rsp_tokens=(k,)),
            sampling=dataclasses.replace(base.sampling, samples=samples, temperature=temperature))
        correct = _correct_matrix(Session(spec, model), Condition(name, k, temperature), samples)
        results[name] = _accuracy(correct)
        if name == PASS8_ROW:
            counts = correct.sum(axis=1)
            results["pass@8 at temperature 1.0 (n=16)"] = _mean_ci(
                np.array([pass_at_k(samples, int(c), 8) for c in counts]))
    clean = results["greedy"]["mean"]
    results["robustness ratio (noise / clean greedy)"] = {
        "mean": results[NOISE_ROW]["mean"] / clean if clean else float("nan")}
    return results


def _correct_matrix(session: Session, condition: Condition, samples: int) -> np.ndarray:
    jobs, records = build_jobs(session, [condition], samples)
    trajectories = generate(session.model, jobs, session.spec.sampling.max_new_tokens,
                            batch_size=64, probes=LOGIT_ONLY_PROBES)
    texts = [session.model.tokenizer.decode(t.generated_token_ids, skip_special_tokens=True)
             for t in trajectories]
    graded = grade(session.spec.data, texts, [r["reference_answer"] for r in records])
    # NaN for an ungraded text: it shows up as nan in the card instead of counting as wrong
    return np.array([np.nan if g.correct is None else g.correct for g in graded],
                    dtype=float).reshape(-1, samples)


def _accuracy(correct: np.ndarray) -> dict:
    return _mean_ci(correct.mean(axis=1))


def _mean_ci(per_problem: np.ndarray) -> dict:
    """Mean with a normal-approximation 95% CI over problems."""
    mean = float(per_problem.mean())
    half = 1.96 * float(per_problem.std(ddof=1)) / np.sqrt(len(per_problem))
    return {"mean": mean, "ci_low": max(0.0, mean - half), "ci_high": min(1.0, mean + half),
            "n_problems": len(per_problem)}


def quality_table(results: dict) -> str:
    lines = ["| measurement (test split) | value | 95% CI |", "|---|---|---|"]
    for name, value in results.items():
        ci = (f"[{value['ci_low']:.3f}, {value['ci_high']:.3f}]" if "ci_low" in value else "")
        lines.append(f"| {name} | {value['mean']:.3f} | {ci} |")
    return "\n".join(lines)


def targets(results: dict) -> list[str]:
    """The issue's quality targets, each stated with whether it holds."""
    greedy = results["greedy"]["mean"]
    checks = [  # temperature accuracies are reported, not targets: sampling may lower them
        ("greedy accuracy in [0.6, 0.9]", 0.6 <= greedy <= 0.9),
        ("pass@8 at T=1.0 (n=16) >= greedy + 0.05",
         results["pass@8 at temperature 1.0 (n=16)"]["mean"] >= greedy + 0.05),
        ("noise robustness >= 0.9 x clean",
         results["robustness ratio (noise / clean greedy)"]["mean"] >= 0.9),
    ]
    return [f"- {'holds' if ok else 'DOES NOT HOLD'}: {text}" for text, ok in checks]


def _eval_history(log: dict) -> str:
    return ", ".join(f"step {e['step']}: {e['val_greedy_accuracy']:.2f}" for e in log["evals"])


def write_card(out: Path, log: dict, results: dict, n_params: int, n_prompts: int) -> None:
    config = log["config"]
    arch, task = config["arch"], config["task"]
    text = f"""# rsp-probe arithmetic toy model

The embedded default model of rsp-probe: a small chain-of-thought word-problem reasoner,
trained from scratch on CPU by `rsp-probe train-toy` (this card is written by that command).

## Architecture
Qwen2 (RMSNorm, rotary positions, gated SiLU MLP, grouped-query attention), tied embeddings:
{arch['n_layers']} layers, d_model {arch['d_model']}, {arch['n_heads']} heads
({arch['n_kv_heads']} key/value heads), MLP {arch['d_mlp']}, context {arch['n_ctx']};
byte-level BPE vocabulary of {config['vocab_size']} (Qwen2 pre-tokenization).
**{n_params:,} parameters.**

## Data and difficulty
GSM-style templated word problems (`rsp_probe.tasks.arithmetic`),
{task['min_steps']}-{task['max_steps']} arithmetic steps (+, -, small multiplications),
operands up to {task['max_operand']},
multipliers up to {task['max_multiplier']}; layouts vary: up to {task['max_preamble_sentences']}
preamble sentences and up to {task['max_distractors']} distractor sentences placed at random;
in {config['noise_rate']:.0%} of training examples a span of 1-6 random real tokens is inserted
at a random place (web text is noisy). Never random vectors: an RSP is a never-seen input.
Prompt: `[BOS] question` + `\\nAnswer:`; target: ` <chain of thought> #### <answer>` + EOS,
loss on the answer only. Train/validation/test splits are disjoint by problem content.

## Training
{log['steps']} steps of batch {config['batch_size']} (AdamW, lr {config['lr']}, warmup + cosine),
seed {config['seed']}, {log['minutes']:.1f} minutes on {config['threads']} CPU threads;
stopped by: {log['stop_reason']} (target greedy validation accuracy
{config['target_accuracy']}). Final training loss {log['final_loss']:.4f}.
The same weights again:
`rsp-probe train-toy --out DIR --seed {config['seed']} --steps {log['steps']}`
(deterministic on CPU; the time budget is the only non-deterministic stop).
Validation greedy accuracy during training: {_eval_history(log)}.

## Quality on {n_prompts} held-out test problems
{quality_table(results)}

Targets:
{chr(10).join(targets(results))}

Reproduce these numbers (another seed gives the same up to sampling error):
`rsp-probe model-card --seed 1`
"""
    (out / "README.md").write_text(text)
    (out / "quality.json").write_text(json.dumps(results, indent=1))
