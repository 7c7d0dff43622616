"""One DAPO update from kept groups: old log-probs once, then `inner_steps` optimiser steps.

The old log-probs come from the same training forward pass (policy.completion_logprobs, the
RSP in its slots, the same row chunks) run without gradient before the first step; the
first step's ratios are therefore exactly 1, which the training log records
(`ratio_dev_first`) and tests/test_train_rl_policy.py checks."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rsp_probe.rl.dapo import clip_fractions, dapo_loss, group_advantages
from rsp_probe.rl.policy import build_batch, completion_logprobs
from rsp_probe.rl.rollouts import Group


@dataclass(frozen=True)
class UpdateSettings:
    group_size: int
    temperature: float
    eps_low: float
    eps_high: float
    inner_steps: int
    chunk_rows: int  # rows per forward pass (gradients accumulate over chunks)
    max_grad_norm: float
    filter_truncated: bool  # overlong filtering: truncated rollouts leave the loss


def batch_of(groups: list[Group], d_model: int, device):
    inputs = [ids for g in groups for ids in g.inputs]
    positions = [g.rsp_positions for g in groups for _ in g.inputs]
    vectors = [v for g in groups for v in g.rsp]
    completions = [c for g in groups for c in g.completions]
    return build_batch(inputs, positions, vectors, completions, d_model, device)


def dapo_update(model, optimiser, groups: list[Group], settings: UpdateSettings) -> dict:
    """Train `model` (a transformers causal LM) on the groups; returns the step's log, empty
    when no token counts."""
    device = next(model.parameters()).device
    batch = batch_of(groups, model.config.hidden_size, device)
    rewards = torch.tensor([r for g in groups for r in g.rewards], dtype=torch.float64)
    advantages = group_advantages(rewards, settings.group_size).float().to(device)
    mask = batch.completion_mask.clone()
    if settings.filter_truncated:
        truncated = torch.tensor([t for g in groups for t in g.truncated], device=device)
        mask[truncated] = 0.0
    n_tokens = mask.sum()
    if float(n_tokens) == 0:  # every kept rollout truncated and filtered: nothing to learn,
        return {}             # and no Adam step (its momentum alone would move the weights)
    chunks = [slice(i, i + settings.chunk_rows) for i in range(0, len(batch),
                                                                settings.chunk_rows)]
    with torch.no_grad():
        old = [completion_logprobs(model, batch.rows(c), settings.temperature)[0]
               for c in chunks]
    log = {"loss": [], "clip_low": [], "clip_high": []}
    for inner in range(settings.inner_steps):
        optimiser.zero_grad(set_to_none=True)
        loss_total, entropy_sum, fractions = 0.0, 0.0, {"clip_low": 0.0, "clip_high": 0.0}
        for chunk, old_chunk in zip(chunks, old):
            logps, entropy = completion_logprobs(model, batch.rows(chunk), settings.temperature)
            chunk_mask, chunk_adv = mask[chunk], advantages[chunk]
            loss = dapo_loss(logps, old_chunk, chunk_adv, chunk_mask, settings.eps_low,
                             settings.eps_high, n_tokens=n_tokens)
            loss.backward()
            loss_total += float(loss.detach())
            share = float(chunk_mask.sum() / n_tokens.clamp(min=1.0))
            for name, value in clip_fractions(logps, old_chunk, chunk_adv, chunk_mask,
                                              settings.eps_low, settings.eps_high).items():
                fractions[name] += value * share
            if inner == 0:
                entropy_sum += float((entropy.detach() * chunk_mask).sum())
                deviation = float((logps.detach() - old_chunk).abs().max()) if logps.numel() \
                    else 0.0
                log["ratio_dev_first"] = max(log.get("ratio_dev_first", 0.0), deviation)
        if inner == 0:
            log["entropy"] = entropy_sum / max(float(n_tokens), 1.0)
        log["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(model.parameters(),
                                                                settings.max_grad_norm))
        optimiser.step()
        log["loss"].append(loss_total)
        for name, value in fractions.items():
            log[name].append(value)
    return {"loss": log["loss"][0], "loss_last": log["loss"][-1],
            "clip_low": sum(log["clip_low"]) / len(log["clip_low"]),
            "clip_high": sum(log["clip_high"]) / len(log["clip_high"]),
            "entropy": log["entropy"], "ratio_dev_first": log["ratio_dev_first"],
            "grad_norm": log["grad_norm"], "tokens": float(n_tokens)}
