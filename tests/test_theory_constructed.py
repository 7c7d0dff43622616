"""The dilution law on a model built so that its assumptions hold exactly, measured through
the real sampler and the real rsp_attention probe.

One Qwen2 layer whose every query is the same vector u (zero W_q, bias u) and whose keys are
zero for every token (column s of the embedding table is zero, W_k reads only dimension s),
while an RSP vector e_s gets a key along u. Every attention logit is then 0 except on the
RSP keys, which carry exactly delta. rope_theta = 1e300 leaves every rotary pair but the first
unrotated, and u lives outside it, so logits do not depend on position. Hence
m_t = k e^delta / (k e^delta + n + t - 1), with n the input tokens (BOS included).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rsp_probe.models import load_model
from rsp_probe.sampler import Job, generate
from rsp_probe.theory import dilution_mass

D_MODEL, N_HEADS, D_HEAD = 32, 2, 16
SPECIAL_DIM = 5  # the embedding dimension only RSP vectors use
QUERY_DIM = 1  # a head dimension outside the rotated first pair (dims 0 and D_HEAD/2)


def _constructed_checkpoint(out, tokenizer_dir, delta: float):
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=D_MODEL, intermediate_size=64,
        num_hidden_layers=1, num_attention_heads=N_HEADS, num_key_value_heads=1,
        max_position_embeddings=512, rope_theta=1e300, tie_word_embeddings=True,
        rms_norm_eps=1e-30,  # RMSNorm(e_s) must be exactly sqrt(d_model) e_s
        initializer_range=0.5, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    attention = model.model.layers[0].self_attn
    with torch.no_grad():
        model.model.embed_tokens.weight[:, SPECIAL_DIM] = 0.0
        model.model.layers[0].input_layernorm.weight.fill_(1.0)
        attention.q_proj.weight.zero_()
        attention.q_proj.bias.zero_()
        attention.k_proj.weight.zero_()
        attention.k_proj.bias.zero_()
        for head in range(N_HEADS):
            attention.q_proj.bias[head * D_HEAD + QUERY_DIM] = 1.0
        # RMSNorm maps e_s to sqrt(d_model) e_s; the logit is q.k / sqrt(d_head) = delta.
        attention.k_proj.weight[QUERY_DIM, SPECIAL_DIM] = delta * math.sqrt(D_HEAD / D_MODEL)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


@pytest.mark.parametrize("delta", [-2.0, 0.0, 1.5, 4.0])
def test_dilution_law_holds_exactly_through_the_sampler(tmp_path, tokenizer_dir, delta):
    model = load_model(str(_constructed_checkpoint(tmp_path / "m", tokenizer_dir, delta)),
                       backend="transformer-lens")
    rsp_vector = torch.zeros(D_MODEL)
    rsp_vector[SPECIAL_DIM] = 1.0
    jobs, expected = [], []
    for n in (3, 17, 40):
        for k in (1, 4, 9):
            ids = [model.tokenizer.bos_token_id] + list(range(5, 4 + n)) + [-1] * k
            jobs.append(Job(f"{n}-{k}", ids, list(range(n, n + k)),
                            rsp_vector.repeat(k, 1), 1.0, 1.0, seed=n * k))
            expected.append((n, k))
    trajectories = generate(model, jobs, max_new_tokens=30, batch_size=4)
    assert sum(len(t.generated_token_ids) for t in trajectories) > 100  # many steps compared
    for (n, k), trajectory in zip(expected, trajectories):
        steps = np.arange(1, len(trajectory.generated_token_ids) + 1)
        measured = trajectory.steps["rsp_attention"]  # [S, layers, heads]
        predicted = dilution_mass(steps, n, k, delta)
        np.testing.assert_allclose(measured, np.broadcast_to(predicted[:, None, None],
                                                             measured.shape), atol=1e-6)


# -- the attention budget -----------------------------------------------------------------
N_CUE = 3


def _budget_checkpoint(out, tokenizer_dir, delta: float):
    """The constructed model with token-dependent key logits: column SPECIAL_DIM of the
    embedding table gets random values, so each token's key logit is
    w * x_hat[s] / sqrt(d_head) with x_hat = RMSNorm(x); the advantage delta_t then moves
    with the generated tokens (suppression), not only the denominator (dilution)."""
    from transformers import AutoModelForCausalLM

    path = _constructed_checkpoint(out, tokenizer_dir, delta)
    model = AutoModelForCausalLM.from_pretrained(str(path))
    with torch.no_grad():
        table = model.model.embed_tokens.weight
        generator = torch.Generator().manual_seed(1)
        table[:, SPECIAL_DIM] = 0.4 * torch.randn(table.shape[0], generator=generator)
    model.save_pretrained(str(path))
    return path, table.detach().double().numpy()


def _key_logits(table: np.ndarray, ids: list[int], delta: float) -> np.ndarray:
    """Every key's logit in float64: RSP slots (-1) carry delta, token j its own."""
    w = delta * math.sqrt(D_HEAD / D_MODEL)
    rows = table[[max(i, 0) for i in ids]]
    x_hat = rows[:, SPECIAL_DIM] / np.sqrt((rows**2).mean(axis=1) + 1e-30)
    logits = w * x_hat / math.sqrt(D_HEAD)
    return np.where(np.asarray(ids) < 0, delta, logits)


def _closed_form_budget(table, input_ids, generated, delta, rsp_positions):
    """Per step [S, 5]: the five group masses from the key logits, and delta_t exactly
    as LME_R - LME_O."""
    from rsp_probe.key_groups import input_key_groups

    codes = input_key_groups(len(input_ids), rsp_positions, N_CUE)
    masses, deltas = [], []
    for t in range(1, len(generated) + 1):
        logits = _key_logits(table, input_ids + generated[:t - 1], delta)
        group = np.array(codes + [4] * (t - 1))
        weights = np.exp(logits) / np.exp(logits).sum()
        masses.append([weights[group == g].sum() for g in range(5)])
        lme = [np.log(np.exp(logits[mask]).mean()) for mask in (group == 0, group != 0)]
        deltas.append(lme[0] - lme[1])
    return np.array(masses), np.array(deltas)


@pytest.mark.parametrize("delta", [-1.0, 2.0])
def test_attention_budget_holds_exactly_through_the_sampler(tmp_path, tokenizer_dir, delta):
    from rsp_probe.probes.names import ATTENTION_PROBE, BUDGET_PROBES
    from rsp_probe.theory.budget import logit_decomposition

    path, table = _budget_checkpoint(tmp_path / "m", tokenizer_dir, delta)
    model = load_model(str(path), backend="transformer-lens")
    rsp_vector = torch.zeros(D_MODEL)
    rsp_vector[SPECIAL_DIM] = 1.0
    jobs = []
    for n, k in ((6, 1), (12, 4), (20, 2)):  # suffix RSP: BOS, question, RSP, cue
        question = list(range(7, 7 + n - 1 - N_CUE))
        ids = [model.tokenizer.bos_token_id] + question + [-1] * k + list(range(40, 40 + N_CUE))
        positions = list(range(len(question) + 1, len(question) + 1 + k))
        jobs.append(Job(f"{n}-{k}", ids, positions, rsp_vector.repeat(k, 1), 1.0, 1.0,
                        seed=n + k, n_cue=N_CUE))
    probes = ("rsp_attention", "attention_budget")
    trajectories = generate(model, jobs, max_new_tokens=20, batch_size=3, probes=probes)
    for job, trajectory in zip(jobs, trajectories):
        generated = trajectory.generated_token_ids
        assert len(generated) >= 5
        expected, delta_t = _closed_form_budget(table, job.input_ids, generated, delta,
                                                job.rsp_positions)
        budget = np.stack([trajectory.steps[name] for name in BUDGET_PROBES], axis=-1)
        np.testing.assert_allclose(budget, np.broadcast_to(expected[:, None, None],
                                                           budget.shape), atol=1e-6)
        np.testing.assert_allclose(budget.sum(axis=-1), 1.0, atol=1e-6)  # a partition
        np.testing.assert_array_equal(budget[..., 0], trajectory.steps[ATTENTION_PROBE])
        k = len(job.rsp_positions)
        n = len(job.input_ids) - k
        steps = np.arange(1, len(generated) + 1)
        parts = logit_decomposition(budget[:, 0, 0, 0].astype(float), k, n, steps)
        np.testing.assert_allclose(parts["delta"], delta_t, atol=1e-6)
        expected_share = -np.log((n + steps[1:] - 1) / n) / (delta_t[1:] - delta_t[0]
                                                             - np.log((n + steps[1:] - 1) / n))
        measured_share = parts["dilution"][1:] / parts["total"][1:]
        np.testing.assert_allclose(measured_share, expected_share, atol=1e-6)
