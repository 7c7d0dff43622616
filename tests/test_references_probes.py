"""Every step probe at temperatures 0, 0.5 and 1, rows of all three in one batch, against one
full Hugging Face forward pass (eager attention) over the prompt, the RSP and the generated
tokens: entropy, top-1 probability and margin of the untempered distribution, collision of
the tempered one (1 under greedy decoding), and the attention mass on the RSP keys."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rsp_probe.rsp import build_inputs_embeds, draw_rsp, fit_law, place_rsp
from rsp_probe.sampler import Job, generate
from rsp_probe.tasks.prompts import encode_plain

QUESTIONS = ["Mia has 12 pencils. She buys 7 more.", "How many cookies are left?"]
TEMPERATURES = (0.0, 0.5, 1.0)
K = 3


def generate_jobs(model):
    """Every question at every temperature, one batch: (jobs, trajectories)."""
    law = fit_law(model.embedding_table)
    jobs = []
    for q, question in enumerate(QUESTIONS):
        ids, positions = place_rsp(encode_plain(model.tokenizer, question), K, "suffix")
        for temperature in TEMPERATURES:
            jobs.append(Job(f"{q}-{temperature}", ids, positions, draw_rsp(law, K, seed=q),
                            temperature, 1.0, seed=q))
    return jobs, generate(model, jobs, max_new_tokens=8, batch_size=len(jobs))


@pytest.fixture(scope="module")
def generated(loaded_qwen2):
    return generate_jobs(loaded_qwen2)


def _reference(model, hf, job, trajectory):
    """Logits [S, V] (float64) and RSP attention mass [S, L, H] of steps 1..S."""
    prompt = build_inputs_embeds(model.embedding_table, job.input_ids, job.rsp_positions,
                                 job.rsp)
    generated = model.embedding_table[torch.tensor(trajectory.generated_token_ids)]
    with torch.no_grad():
        out = hf(inputs_embeds=torch.cat([prompt, generated])[None], output_attentions=True)
    n_steps, start = len(trajectory.generated_token_ids), len(job.input_ids) - 1
    logits = out.logits[0, start:start + n_steps].double().numpy()  # row t-1 predicts token t
    attention = torch.stack(out.attentions)[:, 0, :, start:start + n_steps]  # [L, H, S, K]
    mass = attention[..., job.rsp_positions].sum(-1).permute(2, 0, 1).numpy()
    return logits, mass


def _softmax(logits):
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_every_probe_equals_the_full_forward_pass(loaded_qwen2, hf_qwen2, generated,
                                                  temperature):
    check_probes(loaded_qwen2, hf_qwen2, *generated, temperature)


def check_probes(model, hf, jobs, trajectories, temperature):
    for job, trajectory in zip(jobs, trajectories):
        if job.temperature != temperature:
            continue
        logits, mass = _reference(model, hf, job, trajectory)
        probs = _softmax(logits)
        entropy = -np.where(probs > 0, probs * np.log(np.where(probs > 0, probs, 1)), 0).sum(-1)
        top2 = np.sort(logits, axis=-1)[:, -2:]
        if temperature == 0:
            collision = np.ones(len(logits))
            assert trajectory.generated_token_ids == logits.argmax(-1).tolist()
        else:
            collision = (_softmax(logits / temperature) ** 2).sum(-1)
        steps = trajectory.steps
        np.testing.assert_allclose(steps["entropy"], entropy, atol=1e-4)
        np.testing.assert_allclose(steps["top1_prob"], probs.max(-1), atol=1e-4)
        np.testing.assert_allclose(steps["margin"], top2[:, 1] - top2[:, 0], atol=1e-4)
        np.testing.assert_allclose(steps["collision"], collision, atol=1e-4)
        np.testing.assert_allclose(steps["rsp_attention"], mass, atol=1e-4)


def test_temperature_moves_collision_but_not_the_untempered_probes(generated):
    """The same first step (same prompt, RSP draw and position) under three temperatures."""
    jobs, trajectories = generated
    first = {job.temperature: t.steps for job, t in zip(jobs, trajectories)
             if job.id.startswith("0-")}
    for name in ("entropy", "top1_prob", "margin"):
        assert first[0.0][name][0] == pytest.approx(first[1.0][name][0], abs=1e-5)
    collisions = [first[t]["collision"][0] for t in TEMPERATURES]
    assert collisions[0] == 1.0
    # a lower temperature concentrates the distribution: collision falls as tau grows
    assert collisions[0] > collisions[1] > collisions[2] + 1e-3
