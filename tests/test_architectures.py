"""Architecture coverage: a tiny random checkpoint of each decoder family users meet, loaded
with `--backend auto`. Each family has exactly one expected outcome (EXPECTED): it runs on
the fast hf backend, or auto falls back to TransformerLens; a backend that cannot run a
family faithfully refuses it in one line naming the one that can (REFUSED). Either way the
greedy tokens equal transformers' own `generate(inputs_embeds=...)` and the probes equal an
eager full forward pass with output_attentions to 1e-5."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rsp_probe.backends import hf as hf_backend
from rsp_probe.errors import UsageError
from rsp_probe.models import load_model
from rsp_probe.rsp import draw_rsp, fit_law, place_rsp
from rsp_probe.sampler import Job, generate
from rsp_probe.tasks.prompts import encode_plain
from rsp_probe.toy.checkpoint import ToyArchitecture, save_random_checkpoint

EXPECTED = {  # family -> the backend `auto` picks
    "qwen2": "hf", "qwen3": "hf", "llama": "hf", "mistral": "hf", "gemma3": "hf",
    "phi3": "hf", "gpt2": "hf", "gpt_neox": "hf", "olmo2": "hf",
    # soft-capped scores and logits (caps small enough to bend, rsp_probe/toy/families.py),
    # alternating 8-key sliding windows
    "gemma2": "hf",
}
# families a backend refuses in one line that names the backend that works
REFUSED = {("gemma2", "transformer-lens"): "--backend hf"}
QUESTIONS = ["Mia has 12 pencils. She buys 7 more and gives 5 to Leo.", "How many pencils?"]
K, N_NEW = 3, 6  # a few tokens: long enough to cross Gemma's 8-key sliding window
# float32 attention probabilities and entropies of a 2-layer model: rounding is ~1e-7 here
TOLERANCE = 1e-5


def _family_checkpoint(family, out_dir, tokenizer_dir):
    arch = ToyArchitecture(family=family, n_layers=2, d_model=64, n_heads=4,
                           n_kv_heads=2, d_mlp=128, n_ctx=128, initializer_range=0.4)
    return save_random_checkpoint(out_dir, arch, tokenizer_dir)


@pytest.fixture(scope="module", params=sorted(EXPECTED))
def family_checkpoint(request, tmp_path_factory, tokenizer_dir):
    family = request.param
    return family, _family_checkpoint(family, tmp_path_factory.mktemp(family), tokenizer_dir)


def _jobs(model):
    law = fit_law(model.embedding_table.float())
    jobs = []
    for q, question in enumerate(QUESTIONS):  # different lengths: left padding in the batch
        ids, positions = place_rsp(encode_plain(model.tokenizer, question), K, "suffix")
        jobs.append(Job(f"{q}", ids, positions, draw_rsp(law, K, seed=q), 0.0, 1.0, seed=q))
    return jobs


def _reference_embeds(hf_model, job) -> torch.Tensor:
    """[1, T, D]: the model's own embedding module for the tokens (Gemma's scales them by
    sqrt(d_model) inside the module), the RSP (drawn on that scale) in its slots."""
    ids = torch.tensor([[max(i, 0) for i in job.input_ids]])
    embeds = hf_model.get_input_embeddings()(ids).detach().clone()
    embeds[0, job.rsp_positions] = job.rsp.to(embeds.dtype)
    return embeds


def _eager_reference(hf_model, job, new_tokens):
    """Per step, the entropy of the next-token distribution and the attention [L, H] of the
    newest query on the RSP keys, from one eager forward over prompt + generated tokens."""
    prompt = _reference_embeds(hf_model, job)
    tokens = torch.tensor([new_tokens[:-1]], dtype=torch.long)
    embeds = torch.cat([prompt, hf_model.get_input_embeddings()(tokens)], dim=1)
    with torch.no_grad():
        out = hf_model(inputs_embeds=embeds, output_attentions=True)
    rows = slice(prompt.shape[1] - 1, embeds.shape[1])  # the query of each step
    logp = torch.log_softmax(out.logits[0, rows].double(), dim=-1)
    entropy = -(logp.exp() * logp).sum(-1).numpy()
    attention = torch.stack([a[0, :, rows][..., job.rsp_positions].sum(-1)
                             for a in out.attentions])  # [L, H, S]
    return entropy, attention.permute(2, 0, 1).double().numpy()


def test_each_family_runs_on_its_expected_backend_and_matches_transformers(family_checkpoint):
    from transformers import AutoModelForCausalLM

    family, path = family_checkpoint
    model = load_model(str(path), backend="auto")
    assert model.name == EXPECTED[family]
    hf_model = AutoModelForCausalLM.from_pretrained(str(path), attn_implementation="eager").eval()
    jobs = _jobs(model)
    runs = generate(model, jobs, max_new_tokens=N_NEW)
    for job, run in zip(jobs, runs):
        with torch.no_grad():
            expected = hf_model.generate(inputs_embeds=_reference_embeds(hf_model, job),
                                         do_sample=False, max_new_tokens=N_NEW)[0].tolist()
        assert run.generated_token_ids == expected[:len(run.generated_token_ids)]
        assert len(run.generated_token_ids) == N_NEW or run.stop_reason == "eos"
        entropy, attention = _eager_reference(hf_model, job, run.generated_token_ids)
        np.testing.assert_allclose(run.steps["entropy"], entropy, atol=TOLERANCE, rtol=0)
        np.testing.assert_allclose(run.steps["rsp_attention"], attention, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize(("family", "backend"), sorted(REFUSED))
def test_a_refused_family_is_one_line_naming_the_backend_that_works(family, backend, tmp_path,
                                                                     tokenizer_dir):
    """The bridge's entropies on a tiny Gemma 2 differed from transformers' by up to 2x
    (its tokens matched), so it refuses soft-capped attention and names the hf backend."""
    path = _family_checkpoint(family, tmp_path, tokenizer_dir)
    with pytest.raises(UsageError) as caught:
        load_model(str(path), backend=backend)
    assert "\n" not in str(caught.value) and REFUSED[family, backend] in str(caught.value)


def test_auto_falls_back_on_a_structure_the_hf_backend_cannot_tap(tiny_qwen2, monkeypatch):
    """A decoder whose layers are nowhere the hf backend looks: auto takes the bridge, and
    `--backend hf` names the backend that works."""
    monkeypatch.setattr("rsp_probe.backends.hf_structure._LAYER_ATTRIBUTES", ("blocks",))
    assert load_model(str(tiny_qwen2), backend="auto").name == "transformer-lens"
    with pytest.raises(hf_backend.UnsupportedModelError, match="--backend transformer-lens"):
        load_model(str(tiny_qwen2), backend="hf")


def test_auto_does_not_hide_a_real_hf_failure(tiny_qwen2, monkeypatch):
    """A self-test failure is a bug to report, not a reason to fall back silently."""
    from rsp_probe.errors import KVCacheSelfTestError

    monkeypatch.setattr(hf_backend, "self_test_backend", _broken_self_test)
    with pytest.raises(KVCacheSelfTestError):
        load_model(str(tiny_qwen2), backend="auto")


def _broken_self_test(backend):
    from rsp_probe.errors import KVCacheSelfTestError

    raise KVCacheSelfTestError("injected")
