"""The training loop of `rsp-probe train-rl`: dynamic sampling, a DAPO update, and every
`checkpoint_every` updates a probed checkpoint; it resumes from the latest checkpoint of an
interrupted run (--resume)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd
import torch

from rsp_probe.rl.checkpoint import EVALS_DIR, latest_checkpoint, load_checkpoint, save_checkpoint
from rsp_probe.rl.evaluate import EvalSettings, evaluate
from rsp_probe.rl.rollouts import RolloutSettings, dynamic_sample
from rsp_probe.rl.update import UpdateSettings, dapo_update
from rsp_probe.runs import kill_point

LOG = logging.getLogger("rsp_probe")


def settings_of(spec, options, chat: bool):
    k = spec.rsp.rsp_tokens[0]
    rollout = RolloutSettings(k if options.arm == "rsp" else 0, options.group_size,
                              spec.sampling.temperature, spec.sampling.top_p,
                              spec.sampling.max_new_tokens, spec.rsp.placement, options.overlong,
                              options.overlong_cache, spec.sampling.batch_size, chat)
    update = UpdateSettings(options.group_size, spec.sampling.temperature, options.eps_low,
                            options.eps_high, options.inner_steps, options.chunk_rows,
                            options.max_grad_norm, options.overlong == "filter")
    evaluation = EvalSettings(k, spec.sampling.samples, tuple(options.pass_k),
                              spec.sampling.temperature, spec.sampling.max_new_tokens,
                              spec.rsp.placement, spec.sampling.batch_size, chat,
                              spec.sampling.seed)
    return rollout, update, evaluation


def train(backend, staging: Path, spec, options, pool, eval_problems, chat: bool,
          quiet: bool) -> list[dict]:
    """Train `backend`'s model in place; returns the per-update log. Evaluations are written
    to staging/evals/step-N.parquet (+ .jsonl of trajectories) as checkpoints are taken."""
    rollout, update, evaluation = settings_of(spec, options, chat)
    model = backend.model
    optimiser = torch.optim.Adam(model.parameters(), lr=options.lr)
    model.eval()  # no dropout: the old and new log-probs are the same function
    done = latest_checkpoint(staging)
    log = [] if done is None else load_checkpoint(staging, done, model, optimiser)
    if done is None:
        _probe(backend, staging, spec, evaluation, eval_problems, 0, quiet)
        done = 0
    elif not quiet:
        LOG.info(f"resuming from the checkpoint at update {done}")
    for step in range(done + 1, options.steps + 1):
        started = time.time()
        groups, stats = dynamic_sample(backend, pool, rollout, spec.data,
                                       options.prompts_per_step, options.max_rounds,
                                       spec.sampling.seed, step)
        result = dapo_update(model, optimiser, groups, update) if groups else {}
        log.append({"step": step, **stats, **result, "seconds": round(time.time() - started, 2)})
        if not quiet:
            LOG.info(_progress_line(log[-1], options.steps))
        if step % options.checkpoint_every == 0 or step == options.steps:
            _probe(backend, staging, spec, evaluation, eval_problems, step, quiet)
            save_checkpoint(staging, step, model, optimiser, log)
            kill_point(f"rl-checkpoint-{step}")
    return log


def _probe(backend, staging, spec, evaluation, problems, step, quiet) -> None:
    started = time.time()
    rows, records = evaluate(backend, problems, spec.data, evaluation, step)
    folder = Path(staging) / EVALS_DIR
    folder.mkdir(exist_ok=True)
    pd.DataFrame(records).to_json(folder / f"step-{step:06d}.jsonl", orient="records",
                                  lines=True)
    pd.DataFrame(rows).to_parquet(folder / f"step-{step:06d}.parquet", index=False)
    if not quiet:
        frame = pd.DataFrame(rows)
        means = frame.groupby(["condition", "metric"])["value"].mean()
        parts = [f"{c} pass@1 {means.get((c, 'pass@1'), float('nan')):.3f}"
                 for c in ("temp", "rsp+temp")]
        LOG.info(f"checkpoint {step}: {', '.join(parts)}, greedy accuracy "
                 f"{means.get(('greedy', 'accuracy'), float('nan')):.3f} "
                 f"({time.time() - started:.0f} s)")


def _progress_line(entry: dict, steps: int) -> str:
    if "loss" not in entry:
        return (f"update {entry['step']}/{steps}: skipped, no token to train on (no group with "
                f"mixed rewards, or every kept rollout truncated)")
    return (f"update {entry['step']}/{steps}: reward {entry['reward_mean']:.3f}, kept "
            f"{entry['groups_kept']}/{entry['groups_sampled']} groups, entropy "
            f"{entry['entropy']:.3f} nats, clip {entry['clip_low']:.3f}/{entry['clip_high']:.3f}"
            f", |log ratio - 0| on step 1 {entry['ratio_dev_first']:.1e} "
            f"({entry['seconds']:.1f} s)")
