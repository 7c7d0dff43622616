"""The DAPO objective (Yu et al. 2025), as TRL's GRPOTrainer computes it with loss_type="dapo".

    advantage  A_i = (r_i - mean(r_group)) / (std(r_group) + 1e-4)   std with Bessel's correction
    ratio      rho_t = exp(logp_t - old_logp_t)                      per token
    token loss l_t = -min(rho_t A, clip(rho_t, 1 - eps_low, 1 + eps_high) A)
    loss       sum_t l_t mask_t / sum_t mask_t                      over every token of the batch

plus dynamic sampling (only groups whose rewards are not all equal are trained on), overlong
filtering (a truncated rollout's tokens leave the mask) or the soft overlong penalty (DAPO
Eq. 13, added to the reward). tests/test_train_rl_dapo.py checks these against hand-computed
cases and, when TRL is installed, against GRPOTrainer._compute_loss on identical tensors.
"""

from __future__ import annotations

import torch

EPS_LOW = 0.2
EPS_HIGH = 0.28  # clip-higher
STD_EPS = 1e-4  # TRL's guard in the advantage's denominator


def group_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Advantages [B] of rewards [B] laid out as consecutive groups of `group_size`."""
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    grouped = rewards.view(-1, group_size)  # [n_groups, G]
    mean = grouped.mean(dim=1, keepdim=True)
    std = grouped.std(dim=1, keepdim=True)  # unbiased (Bessel), as TRL's nanstd
    return ((grouped - mean) / (std + STD_EPS)).reshape(-1)


def mixed_groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Dynamic sampling: a bool per group [n_groups], True where the rewards are not all
    equal (a group of equal rewards has zero advantage everywhere and no gradient)."""
    grouped = rewards.view(-1, group_size)
    return (grouped != grouped[:, :1]).any(dim=1)


def soft_overlong_penalty(lengths: torch.Tensor, max_length: int, cache: int) -> torch.Tensor:
    """DAPO Eq. 13: 0 up to max_length - cache, then falling linearly to -1 at max_length
    (and -1 beyond). lengths [B] are completion lengths in tokens."""
    if not 0 < cache <= max_length:
        raise ValueError(f"the overlong cache must be in 1..{max_length}, got {cache}")
    start = max_length - cache
    over = (lengths.double() - start).clamp(min=0.0) / cache
    return -over.clamp(max=1.0)


def dapo_token_loss(logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor,
                    eps_low: float = EPS_LOW, eps_high: float = EPS_HIGH) -> torch.Tensor:
    """Per-token clipped surrogate [B, L] from log-probs [B, L] and advantages [B]."""
    ratio = torch.exp(logps - old_logps)
    advantage = advantages[:, None]
    unclipped = ratio * advantage
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high) * advantage
    return -torch.min(unclipped, clipped)


def dapo_loss(logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor,
              mask: torch.Tensor, eps_low: float = EPS_LOW, eps_high: float = EPS_HIGH,
              n_tokens: torch.Tensor | float | None = None) -> torch.Tensor:
    """The token-level loss: every completion token of the batch weighs the same.

    `mask` [B, L] is 1 on completion tokens that count (0 on padding and on filtered rows);
    `n_tokens` is the normaliser (default mask.sum(): the whole batch in one update)."""
    per_token = dapo_token_loss(logps, old_logps, advantages, eps_low, eps_high)
    normaliser = mask.sum() if n_tokens is None else torch.as_tensor(n_tokens)
    return (per_token * mask).sum() / normaliser.clamp(min=1.0)


def clip_fractions(logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor,
                   mask: torch.Tensor, eps_low: float = EPS_LOW,
                   eps_high: float = EPS_HIGH) -> dict[str, float]:
    """Share of counted tokens whose ratio is clipped below (A < 0) or above (A > 0)."""
    ratio = torch.exp(logps - old_logps).detach()
    advantage = advantages[:, None].expand_as(ratio)
    low = (ratio < 1 - eps_low) & (advantage < 0)
    high = (ratio > 1 + eps_high) & (advantage > 0)
    total = mask.sum().clamp(min=1.0)
    return {"clip_low": float((low * mask).sum() / total),
            "clip_high": float((high * mask).sum() / total)}
