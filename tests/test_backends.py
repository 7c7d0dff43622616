"""The hf backend against the TransformerLens backend and against eager Hugging Face forward
passes: the same tokens, the same probe values, the same sites, the same interventions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rsp_probe.backends import hf as hf_backend
from rsp_probe.backends.base import ATTN_KEY_MASS, ATTN_PATTERN, ATTN_SCORES, RESID_POST, Tap
from rsp_probe.models import load_model
from rsp_probe.rsp import build_inputs_embeds, draw_rsp, fit_law, place_rsp
from rsp_probe.sampler import Job, generate
from rsp_probe.tasks.prompts import encode_plain

QUESTIONS = ["Mia has 12 pencils. She buys 7 more.", "Leo bakes 3 trays of 6 cookies.",
             "How many pencils?"]


@pytest.fixture(scope="module")
def backends(tiny_checkpoint):
    return {name: load_model(str(tiny_checkpoint), backend=name)
            for name in ("transformer-lens", "hf")}


def _jobs(model, k, temperature, samples=2):
    law = fit_law(model.embedding_table)
    jobs = []
    for q, question in enumerate(QUESTIONS):  # different lengths: left padding in the batch
        ids, positions = place_rsp(encode_plain(model.tokenizer, question), k, "suffix")
        jobs += [Job(f"{q}-{s}", ids, positions, draw_rsp(law, k, seed=10 * q + s),
                     temperature, 0.95, seed=s) for s in range(samples)]
    return jobs


@pytest.mark.parametrize("k,temperature", [(0, 0.0), (3, 0.0), (3, 1.0)])
def test_backends_give_the_same_tokens_and_probe_values(backends, k, temperature):
    runs = {name: generate(model, _jobs(model, k, temperature), max_new_tokens=12)
            for name, model in backends.items()}
    for bridge, fast in zip(runs["transformer-lens"], runs["hf"]):
        assert fast.generated_token_ids == bridge.generated_token_ids
        assert fast.stop_reason == bridge.stop_reason
        assert sorted(fast.steps) == sorted(bridge.steps)
        for name, values in bridge.steps.items():
            np.testing.assert_allclose(fast.steps[name], values, atol=1e-4, rtol=0)
    assert any("rsp_attention" in t.steps for t in runs["hf"]) == (k > 0)


def _embeds(model, k=3):
    law = fit_law(model.embedding_table)
    ids, positions = place_rsp(encode_plain(model.tokenizer, QUESTIONS[0]), k, "suffix")
    rows = [build_inputs_embeds(model.embedding_table, ids, positions, draw_rsp(law, k, seed=s))
            for s in range(2)]
    return torch.stack(rows), positions


def _collect(model, taps_for, embeds):
    """Run one full forward with taps built by taps_for(store); return (logits, store)."""
    store: dict = {}
    with torch.inference_mode(), model.tapped(taps_for(store)):
        logits = model.forward(embeds)
    return logits, store


def test_sites_agree_with_transformer_lens(backends):
    embeds, positions = _embeds(backends["hf"])
    key_mask = torch.zeros(embeds.shape[:2])
    key_mask[:, positions] = 1.0
    layers = tuple(range(backends["hf"].info.n_layers))

    def taps_for(store):
        def keep(site):
            return lambda layer, value: store.__setitem__((site, layer), value.float().clone())
        return [Tap(ATTN_PATTERN, layers, keep(ATTN_PATTERN), newest_only=False),
                Tap(ATTN_KEY_MASS, layers, keep(ATTN_KEY_MASS), key_mask=key_mask,
                    newest_only=False),
                Tap(RESID_POST, layers, keep(RESID_POST))]

    (bridge_logits, bridge), (fast_logits, fast) = (
        _collect(backends[name], taps_for, embeds) for name in ("transformer-lens", "hf"))
    torch.testing.assert_close(fast_logits, bridge_logits, atol=1e-4, rtol=0)
    assert sorted(fast) == sorted(bridge) and len(fast) == 3 * len(layers)
    for (site, layer), value in bridge.items():  # residuals reach ~100: relative to scale
        scale = value.abs().max().item() if site == RESID_POST else 1.0
        torch.testing.assert_close(fast[site, layer], value, atol=1e-5 * scale + 1e-5, rtol=0)


def _blocked_reference(path, embeds, rsp_positions):
    """Eager HF forward where no query after the RSP may attend to the RSP keys (every layer):
    an explicit additive 4D mask, independent of any tap."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path), attn_implementation="eager").eval()
    length = embeds.shape[1]
    allowed = torch.ones(length, length).tril().bool()
    allowed[max(rsp_positions) + 1:, rsp_positions] = False
    mask = torch.zeros(embeds.shape[0], 1, length, length)
    mask.masked_fill_(~allowed, torch.finfo(torch.float32).min)
    with torch.no_grad():
        return model(inputs_embeds=embeds, attention_mask=mask).logits


def test_score_intervention_equals_an_explicit_mask(backends, tiny_checkpoint):
    """The knockout: blocking the RSP keys in the scores equals masking them in an eager
    forward pass, on both backends, and actually changes the logits."""
    embeds, positions = _embeds(backends["hf"])
    later = slice(max(positions) + 1, None)

    def block(layer, scores):  # [B, H, Q, K]
        scores = scores.clone()
        scores[:, :, later, positions] = torch.finfo(scores.dtype).min
        return scores

    layers = tuple(range(backends["hf"].info.n_layers))
    reference = _blocked_reference(tiny_checkpoint, embeds, positions)
    for model in backends.values():
        blocked, _ = _collect(model, lambda store: [Tap(ATTN_SCORES, layers, block,
                                                        newest_only=False)], embeds)
        torch.testing.assert_close(blocked, reference, atol=1e-4, rtol=0)
    with torch.inference_mode():
        plain = backends["hf"].forward(embeds)
    assert (plain[:, later] - reference[:, later]).abs().max() > 1e-2


def test_cache_that_outgrows_its_buffer_gives_the_same_tokens(backends, monkeypatch):
    model = backends["hf"]
    jobs = _jobs(model, 3, 0.0, samples=1)
    expected = generate(model, jobs, max_new_tokens=10)
    monkeypatch.setattr(hf_backend, "_CACHE_HEADROOM", 1)  # doubles several times
    grown = generate(model, jobs, max_new_tokens=10)
    for a, b in zip(expected, grown):
        assert a.generated_token_ids == b.generated_token_ids
        np.testing.assert_allclose(a.steps["rsp_attention"], b.steps["rsp_attention"],
                                   atol=1e-6)


def test_bfloat16_loads_and_passes_the_self_test(tiny_qwen2):
    model = load_model(str(tiny_qwen2), dtype="bfloat16", backend="hf")
    assert model.embedding_table.dtype == torch.bfloat16
    assert hf_backend.self_test_backend(model) < 0.5


def test_auto_loads_hf_and_the_run_records_the_backend(tiny_qwen2, tmp_path):
    from rsp_probe.cli import main

    for choice, used in (("auto", "hf"), ("transformer-lens", "transformer-lens")):
        out = tmp_path / choice
        assert main(["entropy", "--model", str(tiny_qwen2), "--backend", choice,
                     "--n-prompts", "1", "--samples", "1", "--max-new-tokens", "2",
                     "--rsp-tokens", "2", "--out", str(out), "--quiet"]) == 0
        config = json.loads((out / "config.json").read_text())
        assert (config["backend"], config["model_info"]["backend"]) == (choice, used)


def test_cli_backend_choices_are_the_registered_backends():
    from rsp_probe.backends import AUTO, list_backends
    from rsp_probe.config import BACKEND_CHOICES

    assert sorted(BACKEND_CHOICES) == sorted([AUTO, *list_backends()])


def test_backends_never_import_models_or_preflight():
    """models imports the backends to load one (through the registry, by module name, which
    an import graph does not see): a backend importing models, even inside a function, would
    close a cycle; the checkpoint helpers they share live in backends/checkpoint.py."""
    import ast
    from pathlib import Path

    import rsp_probe.backends

    imported = {}
    for file in Path(rsp_probe.backends.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.setdefault(node.module, []).append(file.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    imported.setdefault(alias.name, []).append(file.name)
    assert "rsp_probe.backends.checkpoint" in imported  # the walk sees the backends' imports
    assert not {m: f for m, f in imported.items()
                if m in ("rsp_probe.models", "rsp_probe.preflight")}
