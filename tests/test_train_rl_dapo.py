"""The DAPO objective on hand-computed cases (rsp_probe/rl/dapo.py)."""

import pytest
import torch

from rsp_probe.rl.dapo import (
    clip_fractions,
    dapo_loss,
    dapo_token_loss,
    group_advantages,
    mixed_groups,
    soft_overlong_penalty,
)


def test_group_advantages_by_hand():
    # group 1: rewards 1,0,0,0: mean 1/4, Bessel std sqrt((9/16 + 3/16) / 3) = 1/2
    # group 2: all equal: zero advantage
    rewards = torch.tensor([1.0, 0, 0, 0, 1, 1, 1, 1], dtype=torch.float64)
    expected = [0.75 / 0.5001, -0.25 / 0.5001, -0.25 / 0.5001, -0.25 / 0.5001, 0, 0, 0, 0]
    assert group_advantages(rewards, 4).tolist() == pytest.approx(expected, rel=1e-15)


def test_group_advantages_refuse_ragged_groups():
    with pytest.raises(ValueError, match="groups of 3"):
        group_advantages(torch.zeros(4), 3)


def test_mixed_groups_keep_only_groups_with_different_rewards():
    rewards = torch.tensor([1.0, 1, 1, 0, 0, 0, 0.5, 0.5, 0.25])
    assert mixed_groups(rewards, 3).tolist() == [False, False, True]


def test_soft_overlong_penalty_by_hand():
    # DAPO Eq. 13 with L_max = 20, cache 4: 0 up to 16, -(len - 16)/4 up to 20, then -1
    lengths = torch.tensor([3, 16, 17, 18, 20, 25])
    assert soft_overlong_penalty(lengths, 20, 4).tolist() == [0.0, 0.0, -0.25, -0.5, -1.0, -1.0]
    with pytest.raises(ValueError):
        soft_overlong_penalty(lengths, 20, 0)


def ratio_case():
    """Five tokens, ratios 1.5, 0.5, 0.5, 1.5, 1.1 against advantages +1, +1, -1, -1, +2."""
    ratios = torch.tensor([[1.5, 0.5], [0.5, 1.5], [1.1, 1.0]], dtype=torch.float64)
    advantages = torch.tensor([1.0, -1.0, 2.0], dtype=torch.float64)
    old = torch.full_like(ratios, -1.0)
    mask = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    return old + ratios.log(), old, advantages, mask


def test_token_loss_clip_higher_by_hand():
    logps, old, advantages, _ = ratio_case()
    # A > 0: min(r, clip(r, 0.8, 1.28)) -> 1.28 (clipped above), 0.5 (unclipped below)
    # A < 0: -min(-r, -clip(r)) = max(r, clip(r)) -> 0.8 (clipped below), 1.5 (unclipped)
    expected = [[-1.28, -0.5], [0.8, 1.5], [-2.2, -2.0]]
    torch.testing.assert_close(dapo_token_loss(logps, old, advantages),
                               torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0)


def test_loss_is_token_level_and_its_gradient_by_hand():
    logps, old, advantages, mask = ratio_case()
    logps = logps.clone().requires_grad_(True)
    loss = dapo_loss(logps, old, advantages, mask)
    # five counted tokens, each weighing 1/5 whatever its row's length
    assert float(loss.detach()) == pytest.approx((-1.28 - 0.5 + 0.8 + 1.5 - 2.2) / 5, rel=1e-12)
    loss.backward()
    # d(-r A)/dlogp = -r A where unclipped; 0 where clipped; 0 off the mask
    expected = torch.tensor([[0.0, -0.5], [0.0, 1.5], [-2.2, 0.0]], dtype=torch.float64) / 5
    torch.testing.assert_close(logps.grad, expected, rtol=1e-12, atol=1e-15)


def test_explicit_normaliser_splits_a_batch_into_chunks():
    logps, old, advantages, mask = ratio_case()
    whole = dapo_loss(logps, old, advantages, mask)
    parts = sum(dapo_loss(logps[rows], old[rows], advantages[rows], mask[rows],
                          n_tokens=mask.sum()) for rows in (slice(0, 1), slice(1, 3)))
    assert float(parts) == pytest.approx(float(whole), rel=1e-12)


def test_clip_fractions_by_hand():
    logps, old, advantages, mask = ratio_case()
    fractions = clip_fractions(logps, old, advantages, mask)
    assert fractions == {"clip_low": pytest.approx(1 / 5), "clip_high": pytest.approx(1 / 5)}


def test_ratio_one_gives_the_policy_gradient():
    """At ratio 1 the loss is -mean(A) over tokens and its gradient -A / n_tokens."""
    old = torch.log(torch.tensor([[0.2, 0.3, 0.4]], dtype=torch.float64))
    logps = old.clone().requires_grad_(True)
    mask = torch.tensor([[1.0, 1.0, 0.0]], dtype=torch.float64)
    loss = dapo_loss(logps, old, torch.tensor([0.7], dtype=torch.float64), mask)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(-0.7, rel=1e-12)
    assert logps.grad[0].tolist() == pytest.approx([-0.35, -0.35, 0.0], rel=1e-12)
