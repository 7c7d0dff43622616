"""The model card's text: the quality table, the targets with how far each one is missed,
and the card itself, all from measured results and the training log (no number typed)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rsp_probe.tasks.strategies import CHECK_RATE, STRATEGY_WEIGHTS

PER_STRATEGY = "accuracy per strategy"
MIN_STRATEGY_SAMPLES = 20  # fewer samples of a strategy say too little about its accuracy
TARGET_ROWS = ("greedy accuracy", "median per-token entropy at T=1 (nats)",
               "share of tokens above 0.5 nats at T=1", "mean entropy of steps 1-3 at T=1 (nats)",
               "distinct strategies among 8 samples at T=1", "pass@8 at T=1 (n=16)",
               "4 random real tokens after the question (greedy)",
               "robustness ratio (noise / clean greedy)", "accuracy at T=1 (n=16)")


def _cell(value: dict) -> tuple[str, str]:
    ci = f"[{value['ci_low']:.3f}, {value['ci_high']:.3f}]" if "ci_low" in value else ""
    return f"{value['mean']:.3f}", ci


def quality_table(results: dict) -> str:
    lines = ["| measurement (test split) | value | 95% CI |", "|---|---|---|"]
    targets_first = [n for n in TARGET_ROWS if n in results]
    for name in targets_first + [n for n in results if n not in TARGET_ROWS + (PER_STRATEGY,)]:
        lines.append(f"| {name} | {' | '.join(_cell(results[name]))} |")
    if PER_STRATEGY in results:
        lines += ["", "Accuracy per strategy, over the temperature-1 samples that follow it:", "",
                  "| strategy (T=1 samples) | share of samples | accuracy | 95% CI |",
                  "|---|---|---|---|"]
        for name, value in results[PER_STRATEGY].items():
            accuracy, ci = _cell(value) if value["n_samples"] else ("-", "")
            lines.append(f"| {name} | {value['share']:.3f} | {accuracy} | {ci} |")
    return "\n".join(lines)


def _strategy_spread(results: dict) -> float:
    """Largest accuracy difference between two strategies with enough samples."""
    accuracies = [v["mean"] for name, v in results[PER_STRATEGY].items()
                  if name != "other" and v["n_samples"] >= MIN_STRATEGY_SAMPLES]
    return max(accuracies) - min(accuracies) if len(accuracies) > 1 else float("nan")


def target_checks(results: dict) -> list[tuple[str, float, float, str]]:
    """(target, measured, bound, direction): direction ">=" or "<=" the bound."""
    mean = lambda name: results[name]["mean"]
    greedy = mean("greedy accuracy")
    return [
        ("greedy accuracy >= 0.55", greedy, 0.55, ">="),
        ("greedy accuracy <= 0.85", greedy, 0.85, "<="),
        ("median per-token entropy at T=1 <= 0.1 nats",
         mean("median per-token entropy at T=1 (nats)"), 0.1, "<="),
        ("share of tokens above 0.5 nats >= 5%", mean("share of tokens above 0.5 nats at T=1"),
         0.05, ">="),
        ("share of tokens above 0.5 nats <= 30%", mean("share of tokens above 0.5 nats at T=1"),
         0.30, "<="),
        ("mean entropy of steps 1-3 at T=1 >= 0.5 nats",
         mean("mean entropy of steps 1-3 at T=1 (nats)"), 0.5, ">="),
        ("distinct strategies among 8 samples >= 2.5",
         mean("distinct strategies among 8 samples at T=1"), 2.5, ">="),
        ("strategies' accuracies differ, at least one pair by >= 0.1",
         _strategy_spread(results), 0.1, ">="),
        ("pass@8 at T=1 (n=16) >= greedy + 0.10", mean("pass@8 at T=1 (n=16)"), greedy + 0.10,
         ">="),
        ("4 random real tokens >= 0.9 x clean greedy",
         mean("robustness ratio (noise / clean greedy)"), 0.9, ">="),
    ]


def targets(results: dict) -> list[str]:
    """Each of the issue's targets with whether it holds and, if not, by how much it misses."""
    lines = []
    for text, measured, bound, direction in target_checks(results):
        holds = measured >= bound if direction == ">=" else measured <= bound
        if math.isnan(measured):
            lines.append(f"- DOES NOT HOLD: {text}: not measurable (fewer than two strategies "
                         f"with {MIN_STRATEGY_SAMPLES} or more samples)")
        elif holds:
            lines.append(f"- holds: {text} (measured {measured:.3f})")
        else:
            lines.append(f"- DOES NOT HOLD: {text}: measured {measured:.3f}, misses by "
                         f"{abs(measured - bound):.3f}")
    return lines


def _eval_history(log: dict) -> str:
    return ", ".join(f"step {e['step']}: {e['val_greedy_accuracy']:.2f}" for e in log["evals"])


def _strategy_lines(log: dict) -> str:
    counts = log.get("training_strategies", {})
    total = sum(counts.values()) or 1
    return ", ".join(f"{name} {counts.get(name, 0) / total:.0%} (weight {weight})"
                     for name, weight in STRATEGY_WEIGHTS.items())


def _example(task) -> str:
    """One test problem with every strategy's reference solution, written by the task code."""
    from rsp_probe.tasks.arithmetic import ArithmeticConfig, generate_with_plans
    from rsp_probe.tasks.strategies import STRATEGIES, write_solution

    config = ArithmeticConfig(**{**task, "templates": tuple(task["templates"])})
    problem, plan = generate_with_plans(config, "test", 1, seed=0)[0]
    lines = [f"Question: {problem.question}"]
    lines += [f"- {name}: {write_solution(plan, name, check=name == 'steps')}"
              for name in STRATEGIES]
    return "\n".join(lines)


def _init_text(log: dict) -> str:
    if not log["config"].get("init"):
        return "From scratch: "
    seconds = 60 * log["minutes"] / max(1, log["steps"])
    return (f"Continued from the previous default model (the one this model replaced; its "
            f"model.safetensors has sha256 `{log['init_sha256']}`; it was itself trained from "
            f"scratch on the single-strategy task and is kept in the git history), not from "
            f"scratch: on the shared 2-core machine a step took {seconds:.0f} s, too slow to "
            f"learn arithmetic from scratch in the time budget. It already solved the "
            f"story-order strategy; this training taught it the other strategies, phrasings "
            f"and check lines. ")


def write_card(out: Path, log: dict, results: dict, n_params: int, n_prompts: int) -> None:
    config = log["config"]
    arch, task = config["arch"], config["task"]
    init_flag = " --init PREVIOUS_MODEL_DIR" if config.get("init") else ""
    text = f"""# rsp-probe arithmetic toy model

The embedded default model of rsp-probe: a small chain-of-thought word-problem reasoner with
real forks (several valid ways to solve each problem), trained on CPU by
`rsp-probe train-toy` (this card is written by code from measurements, never by hand).

## Architecture
Qwen2 (RMSNorm, rotary positions, gated SiLU MLP, grouped-query attention), tied embeddings:
{arch['n_layers']} layers, d_model {arch['d_model']}, {arch['n_heads']} heads
({arch['n_kv_heads']} key/value heads), MLP {arch['d_mlp']}, context {arch['n_ctx']};
byte-level BPE vocabulary of {config['vocab_size']} (Qwen2 pre-tokenization).
**{n_params:,} parameters.**

## Data and difficulty
GSM-style templated word problems (`rsp_probe.tasks.arithmetic`),
{task['min_steps']}-{task['max_steps']} arithmetic steps (+, -, small multiplications),
operands up to {task['max_operand']}, multipliers up to {task['max_multiplier']}; layouts vary:
up to {task['max_preamble_sentences']} preamble sentences and up to {task['max_distractors']}
distractor sentences placed at random; in {config['noise_rate']:.0%} of training examples a
span of 1-6 random real tokens is inserted at a random place (web text is noisy).
Train/validation/test splits are disjoint by problem content.

Every problem has five strategies (`rsp_probe.tasks.strategies`), drawn at random per
training example: {_strategy_lines(log)}. Phrasings vary inside a strategy, and
{CHECK_RATE:.0%} of examples end with a check line that works backwards from the answer.
A parser names the strategy of any generated solution (or `other`). For example:

```
{_example(task)}
```

Prompt: `[BOS] question` + `\\nAnswer:`; target: ` <chain of thought> #### <answer>` + EOS,
loss on the answer only.

**The model never sees a random vector in training** (an RSP is a never-seen input, as for
real LLMs), and **no RSP measurement was used to choose between training runs or settings**:
the settings were chosen from the training loss and the CPU time a step takes. The RSP rows
below are facts measured after training.

## Training
{_init_text(log)}{log['steps']} steps of batch {config['batch_size']}
(AdamW, lr {config['lr']}, warmup + cosine over {config['max_steps']} steps),
seed {config['seed']}, {log['minutes']:.1f} minutes on {config['threads']} CPU threads
(shared with other jobs); stopped by: {log['stop_reason']}
(the other stops: greedy validation accuracy {config['target_accuracy']}, the schedule's end).
Final training loss {log['final_loss']:.4f}.
The same weights again:
`rsp-probe train-toy --out DIR --seed {config['seed']} --steps {log['steps']}{init_flag}`
(deterministic on CPU; the time budget is the only non-deterministic stop).
Validation greedy accuracy during training: {_eval_history(log) or 'none recorded'}.

## Quality on {n_prompts} held-out test problems
No RSP in any row but the last four (reported as facts, not targets). Entropies are of the
next-token distribution at each step of the temperature-1 trajectories.

{quality_table(results)}

Targets (issue #10):
{chr(10).join(targets(results))}

Reproduce these numbers (another seed gives the same up to sampling error):
`rsp-probe model-card --seed 1 --n-prompts {n_prompts}`
"""
    (out / "README.md").write_text(text)
    (out / "quality.json").write_text(json.dumps(results, indent=1))
