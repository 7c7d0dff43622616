"""`rsp-probe train-toy`: train the embedded default model on the arithmetic task, on CPU.

A ~3M-parameter Qwen2 (RMSNorm, rotary, gated MLP, GQA) learns chain-of-thought word
problems from scratch. Layouts vary (preambles, distractor sentences, and in a small share of
examples a few random real tokens, as web text is noisy) so that it retrieves facts by
content. It never sees a random vector: an RSP stays a never-seen input, as for real LLMs.
Training stops when greedy validation accuracy reaches `target_accuracy` (so that Pass@N
has room above greedy), at `stop_step`, or when the time budget runs out; everything but the
time budget is deterministic from the seed, so `--steps N` reproduces a checkpoint exactly.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from rsp_probe.errors import UsageError
from rsp_probe.tasks.arithmetic import (
    DEFAULT_TASK,
    ArithmeticConfig,
    generate,
    generate_with_plans,
    is_correct,
)
from rsp_probe.tasks.prompts import PLAIN_CUE
from rsp_probe.tasks.strategies import random_solution
from rsp_probe.toy.checkpoint import ToyArchitecture, build_model
from rsp_probe.toy.tokenizer import train_tokenizer


@dataclass(frozen=True)
class TrainConfig:
    arch: ToyArchitecture = ToyArchitecture(n_layers=4, d_model=256, n_heads=4, n_kv_heads=2,
                                            d_mlp=640, n_ctx=512, initializer_range=0.02)
    task: ArithmeticConfig = DEFAULT_TASK  # the task every command evaluates on
    vocab_size: int = 1024
    n_train: int = 40_000  # more than a 90-minute budget on 2 shared cores gets through
    batch_size: int = 32
    lr: float = 1e-3
    warmup_steps: int = 20
    max_steps: int = 400  # the learning-rate schedule's horizon
    stop_step: int | None = None  # stop here (deterministic), whatever the time budget says
    max_minutes: float = 90.0
    eval_every: int = 100
    n_eval: int = 64
    target_accuracy: float = 0.8
    noise_rate: float = 0.1  # share of examples with a span of 1-6 random real tokens
    seed: int = 0
    init: str | None = None  # a checkpoint to continue from (its tokenizer too), else scratch
    threads: int = field(default_factory=lambda: torch.get_num_threads())


# train-toy --quick (tests): the same code path as a real run, at a size that takes seconds
QUICK = dict(n_train=256, max_steps=4, eval_every=2, n_eval=4, batch_size=8, vocab_size=400,
             warmup_steps=1, arch=ToyArchitecture(n_layers=2, d_model=32, n_heads=2,
                                                   n_kv_heads=1, d_mlp=64, n_ctx=512))
QUICK_CARD_PROBLEMS = 4


def training_texts(config: TrainConfig) -> tuple[list[tuple[str, str, str]], dict]:
    """The three segments of each training example (question, answer cue, answer), with a
    strategy, phrasing and check line drawn at random per example; and the strategy counts."""
    rng = random.Random(f"strategies-{config.seed}")
    texts, counts = [], {}
    for problem, plan in generate_with_plans(config.task, "train", config.n_train, config.seed):
        strategy, solution = random_solution(plan, rng)
        counts[strategy] = counts.get(strategy, 0) + 1
        texts.append((problem.question, PLAIN_CUE, " " + solution))
    return texts, counts


class Examples:
    """Tokenized training examples: (ids, first answer index), segment by segment."""

    def __init__(self, tokenizer, parts, noise_rate: float, seed: int):
        self.tokenizer = tokenizer
        self.bos, self.eos = tokenizer.bos_token_id, tokenizer.eos_token_id
        self.rng = random.Random(seed)
        self.noise_rate = noise_rate
        self.real_ids = [i for i in range(len(tokenizer)) if i not in tokenizer.all_special_ids]
        encode = lambda texts: tokenizer(texts, add_special_tokens=False).input_ids
        self.questions = encode([q for q, _, _ in parts])
        self.cue = encode([PLAIN_CUE])[0]
        self.answers = encode([a for _, _, a in parts])

    def __len__(self) -> int:
        return len(self.questions)

    def batches(self, batch_size: int, seed: int, window: int = 32) -> list[list[int]]:
        """Every example once, in batches of similar length (less padding, so a faster step
        on CPU): shuffle, sort each window of `window` batches by length, shuffle batches."""
        rng = random.Random(f"batches-{seed}")
        order = list(range(len(self)))
        rng.shuffle(order)
        length = lambda i: len(self.questions[i]) + len(self.answers[i])
        batches = []
        for start in range(0, len(order) - batch_size + 1, batch_size * window):
            chunk = sorted(order[start:start + batch_size * window], key=length)
            batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)
                        if len(chunk[i:i + batch_size]) == batch_size]
        rng.shuffle(batches)
        return batches

    def example(self, index: int) -> tuple[list[int], int]:
        question = list(self.questions[index])
        if self.rng.random() < self.noise_rate:
            at = self.rng.randint(0, len(question))
            span = self.rng.choices(self.real_ids, k=self.rng.randint(1, 6))
            question[at:at] = span
        prompt = [self.bos] + question + self.cue
        return prompt + self.answers[index] + [self.eos], len(prompt)

    def batch(self, indices: list[int]) -> dict[str, torch.Tensor]:
        examples = [self.example(i) for i in indices]
        width = max(len(ids) for ids, _ in examples)
        input_ids = torch.full((len(examples), width), self.eos)
        labels = torch.full((len(examples), width), -100)
        mask = torch.zeros((len(examples), width), dtype=torch.long)
        for row, (ids, start) in enumerate(examples):
            input_ids[row, :len(ids)] = torch.tensor(ids)
            labels[row, start:len(ids)] = torch.tensor(ids[start:])  # loss on the answer only
            mask[row, :len(ids)] = 1
        return {"input_ids": input_ids, "labels": labels, "attention_mask": mask}


@torch.inference_mode()
def greedy_accuracy(model, tokenizer, problems, max_new_tokens: int = 112) -> float:
    """Greedy accuracy with Hugging Face generate (left padding), for monitoring only."""
    model.eval()
    correct = 0
    for start in range(0, len(problems), 64):
        chunk = problems[start:start + 64]
        prompts = [[tokenizer.bos_token_id]
                   + tokenizer(p.question, add_special_tokens=False).input_ids
                   + tokenizer(PLAIN_CUE, add_special_tokens=False).input_ids for p in chunk]
        width = max(map(len, prompts))
        ids = torch.tensor([[tokenizer.eos_token_id] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                             do_sample=False, pad_token_id=tokenizer.eos_token_id)
        texts = tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
        correct += sum(is_correct(t, p.answer) for t, p in zip(texts, chunk))
    model.train()
    return correct / len(problems)


def learning_rate(step: int, config: TrainConfig) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
    return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def train(out: Path, config: TrainConfig, progress: bool = True) -> dict:
    """Train, save the checkpoint and tokenizer into `out`, return the training log."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    out.mkdir(parents=True, exist_ok=True)
    parts, strategy_counts = training_texts(config)
    from transformers import AutoTokenizer

    if config.init is None:
        train_tokenizer((" ".join(p) for p in parts), config.vocab_size, out)
        tokenizer = AutoTokenizer.from_pretrained(str(out))
        model = build_model(config.arch, len(tokenizer), tokenizer.bos_token_id,
                            tokenizer.eos_token_id, config.seed)
    else:
        tokenizer, model = _initial_checkpoint(Path(config.init))
    examples = Examples(tokenizer, parts, config.noise_rate, config.seed)
    validation = generate(config.task, "validation", config.n_eval, seed=config.seed)
    log = _loop(model, tokenizer, examples, validation, config, progress)
    log["training_strategies"] = strategy_counts
    if config.init is not None:
        log["init_sha256"] = _sha256(Path(config.init) / "model.safetensors")
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    (out / "training_log.json").write_text(json.dumps(log, indent=1))
    return log


def _initial_checkpoint(path: Path):
    """Tokenizer and weights to continue training from (a byte-level BPE tokenizer encodes
    any text, so the new task's words only cost more tokens)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (path / "model.safetensors").exists():
        raise UsageError(f"--init {path}: no model.safetensors there")
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    return tokenizer, model


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _loop(model, tokenizer, examples, validation, config: TrainConfig, progress: bool) -> dict:
    from tqdm.auto import tqdm

    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    batches = examples.batches(config.batch_size, config.seed)
    started, history, evals = time.time(), [], []
    bar = tqdm(total=config.max_steps, desc="train-toy", file=sys.stderr, disable=not progress)
    stop_reason = "max_steps"
    model.train()
    for step in range(config.max_steps):
        picks = batches[step % len(batches)]
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config)
        loss = model(**examples.batch(picks)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        history.append(round(loss.item(), 5))
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if (step + 1) % config.eval_every == 0:
            accuracy = greedy_accuracy(model, tokenizer, validation)
            evals.append({"step": step + 1, "val_greedy_accuracy": accuracy,
                          "minutes": round((time.time() - started) / 60, 2)})
            bar.write(f"step {step + 1}: loss {loss.item():.3f}, val greedy acc {accuracy:.3f}")
            if accuracy >= config.target_accuracy:
                stop_reason = "target_accuracy"
                break
        if config.stop_step is not None and step + 1 >= config.stop_step:
            stop_reason = "stop_step"
            break
        if time.time() - started > 60 * config.max_minutes:
            stop_reason = "time_budget"
            break
    bar.close()
    return {"config": _jsonable(config), "loss": history, "evals": evals,
            "steps": len(history), "stop_reason": stop_reason,
            "minutes": round((time.time() - started) / 60, 2), "final_loss": history[-1]}


def _jsonable(config: TrainConfig) -> dict:
    payload = asdict(config)
    payload["task"]["templates"] = list(payload["task"]["templates"])
    return payload
