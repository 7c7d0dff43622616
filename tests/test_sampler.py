"""The sampler against Hugging Face: generate() token for token, and every recorded probe
value against a recomputation from one full forward pass (eager attention), on every
backend."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rsp_probe.models import load_model
from rsp_probe.rsp import build_inputs_embeds, draw_rsp, fit_law, place_rsp
from rsp_probe.sampler import Job, generate
from rsp_probe.tasks.prompts import encode_plain

QUESTIONS = ["Mia has 12 pencils. She buys 7 more.", "Leo bakes 3 trays of 6 cookies.",
             "How many pencils does Mia have now?"]


def _hf_model(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path), attn_implementation="eager").eval()


def _jobs(model, k, temperature=0.0, placement="suffix", samples=1):
    law = fit_law(model.embedding_table)
    jobs = []
    for q, question in enumerate(QUESTIONS):
        prompt = encode_plain(model.tokenizer, question)
        ids, positions = place_rsp(prompt, k, placement)
        for s in range(samples):
            jobs.append(Job(f"{q}-{s}", ids, positions, draw_rsp(law, k, seed=10 * q + s),
                            temperature, 1.0, seed=s))
    return jobs


@pytest.fixture(scope="module", params=["transformer-lens", "hf"])
def models(request, tiny_checkpoint):
    return (load_model(str(tiny_checkpoint), backend=request.param),
            _hf_model(tiny_checkpoint))


@pytest.mark.parametrize("k", [0, 3])
def test_greedy_equals_hf_generate(models, k):
    model, hf = models
    jobs = _jobs(model, k)
    ours = generate(model, jobs, max_new_tokens=12)
    for job, trajectory in zip(jobs, ours):
        embeds = build_inputs_embeds(model.embedding_table, job.input_ids, job.rsp_positions,
                                     job.rsp)[None]
        with torch.no_grad():
            if k == 0:
                ref = hf.generate(torch.tensor([job.input_ids]), max_new_tokens=12,
                                  do_sample=False)[0, len(job.input_ids):]
            else:  # with inputs_embeds, generate returns only the new tokens
                mask = torch.ones(1, embeds.shape[1], dtype=torch.long)
                ref = hf.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=12,
                                  do_sample=False)[0]
        assert trajectory.generated_token_ids == ref.tolist()
    assert len({tuple(t.generated_token_ids) for t in ours}) > 1  # outputs depend on the input


def test_batched_equals_unbatched(models):
    model, _ = models
    jobs = _jobs(model, 2, temperature=0.9, samples=3)
    batched = generate(model, jobs, max_new_tokens=10, batch_size=len(jobs))
    single = generate(model, jobs, max_new_tokens=10, batch_size=1)
    for a, b in zip(batched, single):
        assert a.generated_token_ids == b.generated_token_ids
        for name in a.steps:
            np.testing.assert_allclose(a.steps[name], b.steps[name], atol=1e-4)


@pytest.mark.parametrize("placement", ["suffix", "prefix"])
def test_probes_equal_full_forward_recomputation(models, placement):
    model, hf = models
    jobs = _jobs(model, 3, temperature=1.0, placement=placement, samples=2)
    for job, trajectory in zip(jobs, generate(model, jobs, max_new_tokens=10, batch_size=4)):
        prompt = build_inputs_embeds(model.embedding_table, job.input_ids, job.rsp_positions,
                                     job.rsp)
        generated = model.embedding_table[torch.tensor(trajectory.generated_token_ids)]
        with torch.no_grad():
            out = hf(inputs_embeds=torch.cat([prompt, generated])[None], output_attentions=True)
        n_steps, start = len(trajectory.generated_token_ids), len(job.input_ids) - 1
        logits = out.logits[0, start:start + n_steps].double()  # row t-1 predicts token t
        probs = logits.softmax(-1)
        entropy = -(probs * probs.clamp_min(1e-300).log()).sum(-1)
        top2 = logits.topk(2, dim=-1).values
        np.testing.assert_allclose(trajectory.steps["entropy"], entropy, atol=1e-4)
        np.testing.assert_allclose(trajectory.steps["top1_prob"], probs.max(-1).values, atol=1e-4)
        np.testing.assert_allclose(trajectory.steps["margin"], top2[:, 0] - top2[:, 1], atol=1e-4)
        attention = torch.stack(out.attentions)[:, 0]  # [L, H, Q, K]
        mass = attention[:, :, start:start + n_steps][..., job.rsp_positions].sum(-1)
        np.testing.assert_allclose(trajectory.steps["rsp_attention"],
                                   mass.permute(2, 0, 1).numpy(), atol=1e-4)
        assert trajectory.steps["rsp_attention"].max() > 1e-3  # the RSP is actually attended


def test_top_p_restricts_to_nucleus(models):
    model, _ = models
    jobs = [Job("j", job.input_ids, [], job.rsp, 1.0, 1e-6, seed=s)
            for s, job in enumerate(_jobs(model, 0, samples=1) * 3)]
    greedy = generate(model, [Job(j.id, j.input_ids, [], j.rsp, 0.0, 1.0, 0) for j in jobs], 6)
    nucleus = generate(model, jobs, 6)
    assert [t.generated_token_ids for t in nucleus] == [t.generated_token_ids for t in greedy]
