"""The training forward pass carries the RSP as sampling did: log-probs equal an unpadded
reference forward, greedy rollouts are the argmax of the training logits at every step, and
the first inner step's importance ratios are exactly 1 with the RSP present."""

from dataclasses import replace

import pytest
import torch

from rsp_probe.config import DataConfig
from rsp_probe.rl.policy import build_batch, completion_logprobs
from rsp_probe.rl.rollouts import RolloutSettings, sample_groups
from rsp_probe.rl.update import UpdateSettings, batch_of, dapo_update
from rsp_probe.tasks.arithmetic import DEFAULT_TASK, generate

K, G = 4, 4


@pytest.fixture(scope="module")
def backend():
    from rsp_probe.models import load_model

    return load_model(None, backend="hf")


def settings(temperature: float, k: int = K) -> RolloutSettings:
    return RolloutSettings(k=k, group_size=G, temperature=temperature, top_p=1.0,
                           max_new_tokens=24, placement="suffix", overlong="filter",
                           overlong_cache=8, batch_size=16, chat=False)


@pytest.fixture(scope="module")
def groups(backend):
    problems = generate(DEFAULT_TASK, "train", 3, seed=0)
    return sample_groups(backend, problems, settings(1.0), DataConfig(), (0, "test"))


def test_rollouts_carry_a_fresh_rsp_each(groups):
    vectors = [v for g in groups for v in g.rsp]
    assert all(v.shape == (K, 256) for v in vectors)
    assert len({tuple(v[0, :3].tolist()) for v in vectors}) == len(vectors)  # all different
    assert all(len(g.rsp_positions) == K and -1 in g.inputs[0] for g in groups)


def test_logprobs_equal_an_unpadded_reference_forward(backend, groups):
    model = backend.model
    batch = batch_of(groups, model.config.hidden_size, "cpu")
    with torch.no_grad():
        logps, entropy = completion_logprobs(model, batch, temperature=1.0)
        table = model.get_input_embeddings().weight
        for row, (ids, vectors, done) in enumerate(
                [(i, v, c) for g in groups for i, v, c in zip(g.inputs, g.rsp, g.completions)]):
            embeds = table[torch.tensor([max(i, 0) for i in ids] + done)].clone()
            slots = [p for p, i in enumerate(ids) if i < 0]
            embeds[slots] = vectors
            logits = model(inputs_embeds=embeds[None]).logits[0, len(ids) - 1:-1]
            expected = torch.log_softmax(logits, -1).gather(-1, torch.tensor(done)[:, None])[:, 0]
            # float32 through 4 layers of one model, padded vs unpadded attention kernels
            torch.testing.assert_close(logps[row, :len(done)], expected, rtol=0, atol=2e-4)
            assert bool((batch.completion_mask[row, len(done):] == 0).all())
    log_vocab = float(torch.log(torch.tensor(float(model.config.vocab_size))))
    assert bool((entropy >= 0).all()) and bool((entropy <= log_vocab + 1e-4).all())


def test_the_rsp_in_the_training_pass_matters(backend, groups):
    """Without the vectors in their slots the log-probs move far beyond rounding."""
    model = backend.model
    batch = batch_of(groups, model.config.hidden_size, "cpu")
    with torch.no_grad():
        with_rsp, _ = completion_logprobs(model, batch, 1.0)
        batch.slot_vectors.zero_()
        without, _ = completion_logprobs(model, batch, 1.0)
    mask = batch.completion_mask.bool()
    assert float((with_rsp - without)[mask].abs().max()) > 0.05


def test_greedy_rollouts_are_the_argmax_of_the_training_pass(backend):
    """Placement and positions as at inference: each greedy token (sampled through the KV
    cache, left-padded among rows of other lengths) is the argmax of the training logits."""
    problems = generate(DEFAULT_TASK, "train", 4, seed=1)
    found = sample_groups(backend, problems, settings(0.0), DataConfig(), (1, "greedy"))
    model = backend.model
    batch = batch_of(found, model.config.hidden_size, "cpu")
    with torch.no_grad():
        embeds = model.get_input_embeddings()(batch.token_ids)
        embeds = torch.where(batch.in_slot[..., None], batch.slot_vectors, embeds)
        logits = model(inputs_embeds=embeds, attention_mask=batch.attention_mask,
                       position_ids=batch.position_ids).logits
    start, length = batch.prompt_width - 1, batch.completion_ids.shape[1]
    argmax = logits[:, start:start + length].argmax(-1)
    mask = batch.completion_mask.bool()
    assert bool((argmax[mask] == batch.completion_ids[mask]).all())


def test_ratio_is_exactly_one_on_the_first_inner_step_with_the_rsp(backend, groups):
    model = backend.model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    mixed = [replace(g, rewards=[1.0, 0.0, 0.0, 0.0]) for g in groups]  # non-zero advantages
    update = UpdateSettings(group_size=G, temperature=1.0, eps_low=0.2, eps_high=0.28,
                            inner_steps=2, chunk_rows=5, max_grad_norm=1.0,
                            filter_truncated=False)  # 24 tokens: most are cut
    try:
        log = dapo_update(model, optimiser, mixed, update)
        assert log["ratio_dev_first"] == 0.0  # exactly: the same function on the same inputs
        assert any(not torch.equal(before[n], p) for n, p in model.named_parameters())
    finally:
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                parameter.copy_(before[name])


def test_build_batch_layout():
    batch = build_batch([[5, -1, 6], [7, 8, -1, -1, 9]], [[1], [2, 3]],
                        [torch.ones(1, 2), 2 * torch.ones(2, 2)], [[3, 4], [5]], 2, "cpu")
    assert batch.prompt_width == 5
    assert batch.token_ids.tolist() == [[0, 0, 5, 0, 6, 3, 4], [7, 8, 0, 0, 9, 5, 0]]
    assert batch.attention_mask.tolist() == [[0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 0]]
    assert batch.position_ids.tolist() == [[0, 0, 0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 5, 5]]
    assert batch.in_slot[0].nonzero().flatten().tolist() == [3]
    assert batch.in_slot[1].nonzero().flatten().tolist() == [2, 3]
    assert batch.completion_mask.tolist() == [[1, 1], [1, 0]]


def test_ratio_is_exactly_one_on_another_model_family(tiny_llama):
    """The same on a random Llama (untied embeddings): the first step's ratios are exactly 1
    and the update moves the weights, the input embeddings included."""
    from rsp_probe.models import load_model

    backend = load_model(str(tiny_llama), backend="hf")
    problems = generate(DEFAULT_TASK, "train", 2, seed=2)
    found = sample_groups(backend, problems, settings(1.0), DataConfig(), (2, "llama"))
    mixed = [replace(g, rewards=[0.0, 1.0, 0.0, 1.0]) for g in found]
    table = backend.model.get_input_embeddings().weight.detach().clone()
    optimiser = torch.optim.Adam(backend.model.parameters(), lr=1e-3)
    update = UpdateSettings(group_size=G, temperature=1.0, eps_low=0.2, eps_high=0.28,
                            inner_steps=1, chunk_rows=8, max_grad_norm=1.0,
                            filter_truncated=False)
    log = dapo_update(backend.model, optimiser, mixed, update)
    assert log["ratio_dev_first"] == 0.0
    assert not torch.equal(backend.model.get_input_embeddings().weight, table)


def test_nothing_to_train_on_takes_no_optimiser_step(backend, groups):
    """Every kept rollout truncated and filtered: no Adam step, whose momentum alone would
    move the weights."""
    model = backend.model
    cut = [replace(g, rewards=[1.0, 0.0, 0.0, 0.0], truncated=[True] * G) for g in groups]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    update = UpdateSettings(group_size=G, temperature=1.0, eps_low=0.2, eps_high=0.28,
                            inner_steps=1, chunk_rows=8, max_grad_norm=1.0,
                            filter_truncated=True)
    assert dapo_update(model, optimiser, cut, update) == {}
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())
