"""The DAPO loss and its gradient against TRL's GRPOTrainer._compute_loss on identical
tensors (TRL pinned in constraints.txt, extra `rl`); skipped where TRL is not installed. The
per-token log-probs are injected in place of TRL's forward pass (its documented way to test
a loss: shared/notes/trl-dapo.md section 5), so the comparison is of the objective alone."""

import pytest
import torch

trl = pytest.importorskip("trl")

from rsp_probe.models import resolve_model_path  # noqa: E402
from rsp_probe.rl.dapo import dapo_loss, group_advantages  # noqa: E402

B, L, G = 8, 6, 4


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, _, _ = resolve_model_path(None)
    config = trl.GRPOConfig(
        output_dir=str(tmp_path_factory.mktemp("trl")), loss_type="dapo", epsilon=0.2,
        epsilon_high=0.28, beta=0.0, num_generations=G, per_device_train_batch_size=G,
        gradient_accumulation_steps=1, steps_per_generation=1, bf16=False, use_cpu=True,
        gradient_checkpointing=False, report_to=[], max_completion_length=L)
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    built = trl.GRPOTrainer(model=model, reward_funcs=lambda completions, **_: [0.0] *
                            len(completions), args=config, processing_class=tokenizer,
                            train_dataset=Dataset.from_dict({"prompt": ["1 + 1 ="] * G}))
    built.current_gradient_accumulation_steps = 1
    return built


def cases():
    """Hand-made tensors: ratios inside, above and below the clip range, both signs of
    advantage, padding in the completion mask."""
    generator = torch.Generator().manual_seed(0)
    old = -torch.rand(B, L, generator=generator, dtype=torch.float64) * 3
    shift = (torch.rand(B, L, generator=generator, dtype=torch.float64) - 0.5) * 0.9
    mask = torch.ones(B, L, dtype=torch.float64)
    mask[1, 4:] = 0
    mask[5, 2:] = 0
    rewards = torch.tensor([1.0, 0, 0, 1, 0, 1, 1, 1], dtype=torch.float64)
    return old, old + shift, mask, rewards


def test_loss_and_gradient_equal_trl(trainer, monkeypatch):
    old, new, mask, rewards = cases()
    advantages = group_advantages(rewards, G)
    ours_logps = new.clone().requires_grad_(True)
    theirs_logps = new.clone().requires_grad_(True)

    def fixed(*args, **kwargs):
        return theirs_logps, torch.zeros_like(theirs_logps), None

    monkeypatch.setattr(trainer, "_get_per_token_logps_and_entropies", fixed)
    inputs = {"prompt_ids": torch.zeros(B, 2, dtype=torch.long),
              "prompt_mask": torch.ones(B, 2, dtype=torch.long),
              "completion_ids": torch.zeros(B, L, dtype=torch.long),
              "completion_mask": mask.long(), "advantages": advantages,
              "old_per_token_logps": old, "num_items_in_batch": mask.sum()}
    theirs = trainer._compute_loss(trainer.model, inputs)
    theirs.backward()
    ours = dapo_loss(ours_logps, old, advantages, mask)
    ours.backward()
    # float64 inputs, the same operations: agreement to a few float64 ulps
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(ours_logps.grad, theirs_logps.grad, rtol=1e-12, atol=1e-15)
    assert theirs_logps.grad.abs().sum() > 0  # the comparison saw a real gradient


def test_advantages_equal_trl_formula():
    """TRL: (r - group mean) / (nanstd(r over the group) + 1e-4), nanstd with Bessel."""
    from trl.trainer.utils import nanstd

    _, _, _, rewards = cases()
    grouped = rewards.view(-1, G)
    std = torch.stack([nanstd(row) for row in grouped])[:, None]
    expected = ((grouped - grouped.mean(dim=1, keepdim=True)) / (std + 1e-4)).reshape(-1)
    # TRL's Bessel factor count / (count - 1) is a float32 division (rounded by <= 2^-24,
    # so the std by <= 2^-25); everything else is float64
    torch.testing.assert_close(group_advantages(rewards, G), expected, rtol=2 ** -23, atol=0)
