"""`rsp-probe tune-prompt`: prompt tuning at the RSP's own placement, the model frozen.

k trainable vectors sit exactly where an RSP would (rsp.place_rsp: after the question and
before the answer cue for suffix, after BOS for prefix); the loss is the cross-entropy of the
answer tokens (the task's reference solution, or the answer alone) after the cue. The vectors
start from an RSP draw (init "rsp") or from k random real token embeddings (init "tokens").

PEFT's prompt tuning (PromptEmbedding + PeftModelForCausalLM) is not used: it always
concatenates its virtual tokens in front of the whole input, before BOS and the question, so it
cannot put them after the question (suffix) or after BOS (prefix), where the RSP they are
compared with sits; what remains (one Parameter, Adam, a frozen model's loss) is a few lines.

Deterministic from the seed on CPU: the initial draw, the batches and the validation draws
derive from it; nothing reads the global RNG.
"""

from __future__ import annotations

import logging
import random
import sys
from dataclasses import asdict

import torch

from rsp_probe.config import DataConfig
from rsp_probe.errors import UsageError
from rsp_probe.models import one_thread_on_cpu
from rsp_probe.rsp import derive_seed, draw_rsp, fit_law, place_rsp
from rsp_probe.soft_prompts.options import TuneOptions
from rsp_probe.tasks.prompts import encode_problem, use_chat_template

LOG = logging.getLogger("rsp_probe")


def data_config(options: TuneOptions) -> DataConfig:
    return DataConfig(dataset=options.dataset, question_field=options.question_field,
                      answer_field=options.answer_field, chat_template=options.chat_template)


def split_problems(options: TuneOptions):
    """(train, validation) problems: the built-in splits, or a local file cut in two."""
    if options.dataset is None:
        from rsp_probe.tasks.arithmetic import DEFAULT_TASK, generate

        return (generate(DEFAULT_TASK, "train", options.n_train, seed=0),
                generate(DEFAULT_TASK, "validation", options.n_validation, seed=0))
    from rsp_probe.tasks.datasets import load_dataset_file

    problems = load_dataset_file(options.dataset, question_field=options.question_field,
                                 answer_field=options.answer_field)
    if len(problems) < options.n_validation + 1:
        raise UsageError(f"--dataset {options.dataset}: {len(problems)} problems, need more "
                         f"than --n-validation {options.n_validation}")
    train = problems[:len(problems) - options.n_validation][:options.n_train]
    return train, problems[len(problems) - options.n_validation:]


class Examples:
    """Each training problem as (input ids with -1 at the k slots, slot start, answer ids)."""

    def __init__(self, tokenizer, problems, k: int, placement: str, chat: bool):
        self.rows = []
        eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        for problem in problems:
            ids, positions = place_rsp(encode_problem(tokenizer, problem, chat), k, placement)
            target = (problem.solution or problem.answer) if not chat else problem.answer
            answer = tokenizer(target if chat else " " + target,
                               add_special_tokens=False).input_ids + eos
            self.rows.append((ids, positions[0] if positions else 0, answer))

    def batch(self, indices, table: torch.Tensor, prompt: torch.Tensor):
        """Right-padded inputs_embeds [B, T, D] with the prompt in its slots (differentiable
        in `prompt`), attention mask [B, T] and labels [B, T] (-100 off the answer)."""
        rows = [self.rows[i] for i in indices]
        width = max(len(ids) + len(answer) for ids, _, answer in rows)
        token_ids = torch.zeros(len(rows), width, dtype=torch.long)
        slot = torch.full((len(rows), width), -1, dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        k = prompt.shape[0]
        for row, (ids, start, answer) in enumerate(rows):
            full = [max(i, 0) for i in ids] + answer
            token_ids[row, :len(full)] = torch.tensor(full)
            slot[row, start:start + k] = torch.arange(k)
            labels[row, len(ids):len(full)] = torch.tensor(answer)
            mask[row, :len(full)] = 1
        embeds = table[token_ids]  # [B, T, D]
        in_slot = (slot >= 0)[..., None]
        embeds = torch.where(in_slot, prompt[slot.clamp(min=0)].to(embeds.dtype), embeds)
        return embeds, mask, labels


def answer_loss(model, examples: Examples, indices, prompt: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the answer tokens of `indices` with `prompt` in its slots."""
    table = model.embedding_table.detach()
    embeds, mask, labels = examples.batch(indices, table, prompt)
    return model.model(inputs_embeds=embeds, attention_mask=mask, labels=labels).loss


def initial_prompt(model, options: TuneOptions) -> torch.Tensor:
    tokenizer = model.tokenizer
    law = fit_law(model.embedding_table, "gaussian" if options.init == "rsp" else "tokens",
                  special_ids=set(tokenizer.all_special_ids), n_real_tokens=len(tokenizer))
    return draw_rsp(law, options.rsp_tokens, derive_seed(options.seed, "tune-prompt", "init"))


def tune(model, options: TuneOptions, progress: bool = False) -> tuple[torch.Tensor, dict]:
    """Train the prompt on a loaded HF backend; returns (vectors [k, D] float32, log).

    The log holds the loss per step and the mean answer loss of a fixed set of training
    examples before and after (the same examples, so the two are comparable). On CPU it
    trains on one thread: multi-threaded backward reductions differ in the last bits from run
    to run, and the prompt must be a function of its seed."""
    with one_thread_on_cpu(model.device):
        return _tune(model, options, progress)


def _tune(model, options: TuneOptions, progress: bool) -> tuple[torch.Tensor, dict]:
    if options.rsp_tokens < 1 or options.steps < 1 or options.batch_size < 1 or options.lr <= 0:
        raise UsageError("--rsp-tokens, --steps and --batch-size must be >= 1 and --lr > 0")
    train, _ = split_problems(options)
    chat = use_chat_template(model.tokenizer, options.chat_template)
    examples = Examples(model.tokenizer, train, options.rsp_tokens, options.placement, chat)
    sigma = float(fit_law(model.embedding_table).std)
    prompt = torch.nn.Parameter(initial_prompt(model, options).to(model.device))
    optimiser = torch.optim.Adam([prompt], lr=options.lr * sigma)
    for parameter in model.model.parameters():
        parameter.requires_grad_(False)
    model.model.eval()  # frozen and no dropout
    rng = random.Random(f"tune-prompt-{options.seed}")
    fixed = list(range(min(len(examples.rows), 4 * options.batch_size)))
    log = {"loss": [], "fixed_loss_before": _fixed_loss(model, examples, fixed, prompt)}
    bar = _bar(options, progress)
    for step in range(1, options.steps + 1):
        indices = rng.sample(range(len(examples.rows)), min(options.batch_size,
                                                            len(examples.rows)))
        loss = answer_loss(model, examples, indices, prompt)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        value = loss.item()
        log["loss"].append(value)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{value:.3f}")
        if not options.quiet and (step % options.log_every == 0 or step == options.steps):
            LOG.info(f"step {step}/{options.steps}  loss {value:.4f}")
    if bar is not None:
        bar.close()
    log["fixed_loss_after"] = _fixed_loss(model, examples, fixed, prompt)
    return prompt.detach().cpu().float(), log


def _fixed_loss(model, examples, indices, prompt) -> float:
    with torch.no_grad():
        return float(answer_loss(model, examples, indices, prompt))


def _bar(options: TuneOptions, progress: bool):
    if options.quiet or not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=options.steps, desc="tune-prompt", unit="step", file=sys.stderr,
                dynamic_ncols=True)


def validation_accuracy(model, options: TuneOptions, prompt: torch.Tensor | None) -> float:
    """Greedy accuracy on the validation problems through the sampler, the prompt injected
    as an RSP would be (None: no prompt)."""
    from rsp_probe.sampler import Job, generate
    from rsp_probe.tasks.grading import grade

    _, problems = split_problems(options)
    chat = use_chat_template(model.tokenizer, options.chat_template)
    k = 0 if prompt is None else prompt.shape[0]
    vectors = torch.zeros(0, model.info.d_model) if prompt is None else prompt
    jobs = []
    for problem in problems:
        encoded = encode_problem(model.tokenizer, problem, chat)
        ids, positions = place_rsp(encoded, k, options.placement)
        jobs.append(Job(problem.id, ids, positions, vectors, 0.0, 1.0, seed=0,
                        n_cue=len(encoded.cue)))
    trajectories = generate(model, jobs, options.max_new_tokens, probes=())
    texts = [model.tokenizer.decode(t.generated_token_ids, skip_special_tokens=True)
             for t in trajectories]
    graded = grade(data_config(options), texts, [p.answer for p in problems])
    return sum(bool(g.correct) for g in graded) / len(graded)


def tune_and_save(model, options: TuneOptions, progress: bool = False) -> dict:
    """Train, measure the validation accuracy with and without the prompt, save; the card."""
    from rsp_probe.soft_prompts.io import model_identity, save_soft_prompt

    prompt, log = tune(model, options, progress)
    info = model.info
    losses = log["loss"]
    card = {
        "placement": options.placement, "init": options.init, "steps": options.steps,
        "seed": options.seed, "loss_first_step": losses[0],
        "loss_last_10_steps": sum(losses[-10:]) / len(losses[-10:]),
        "fixed_loss_before": log["fixed_loss_before"],
        "fixed_loss_after": log["fixed_loss_after"],
        "validation_accuracy": validation_accuracy(model, options, prompt),
        "validation_accuracy_no_prompt": validation_accuracy(model, options, None),
        "options": {k: v for k, v in asdict(options).items()
                    if k not in ("out", "quiet", "overwrite")},
        "loss_log": [round(x, 5) for x in losses],
        **model_identity(info.name, info.weights_sha256, info.revision),
    }
    return save_soft_prompt(options.out, prompt, card)
