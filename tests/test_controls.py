"""Control laws (rsp_probe.controls): draws against numpy references, and the positions-only
control on a model whose rotary embedding is disabled gives the baseline's tokens."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rsp_probe.controls import PC_FRACTION
from rsp_probe.rsp import draw_rsp, fit_law


@pytest.fixture(scope="module")
def table():
    generator = torch.Generator().manual_seed(0)
    scales = torch.linspace(3.0, 0.1, 24)  # an anisotropic table: the top PCs matter
    return torch.randn(500, 24, generator=generator) * scales + 0.2


def _numpy_projector(table: torch.Tensor) -> np.ndarray:
    values = table.double().numpy()
    _, _, vt = np.linalg.svd(values - values.mean(axis=0), full_matrices=False)
    top = vt[:round(PC_FRACTION * values.shape[1])].T
    return top @ top.T


@pytest.mark.parametrize("kind", ["pc-in", "pc-out"])
def test_pc_controls_are_norm_matched_and_in_or_out_of_the_span(table, kind):
    law = fit_law(table, kind)
    vectors = draw_rsp(law, 6, seed=3).double().numpy()
    gaussian = draw_rsp(fit_law(table, "gaussian"), 6, seed=3).double().numpy()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1),
                               np.linalg.norm(gaussian, axis=1), rtol=1e-5)
    projector = _numpy_projector(table)
    inside = vectors @ projector
    np.testing.assert_allclose(inside if kind == "pc-out" else vectors - inside, 0.0, atol=1e-4)
    assert np.abs(vectors).max() > 0.1


def test_mean_and_neftune_draws(table):
    law = fit_law(table, "mean")
    vectors = draw_rsp(law, 3, seed=1).numpy()
    np.testing.assert_allclose(vectors, table.double().mean().item(), atol=1e-6)
    from rsp_probe.controls import prompt_noise

    noise = prompt_noise(40, 24, alpha=5.0, seed=2).numpy()
    bound = 5.0 / np.sqrt(40 * 24)
    assert noise.shape == (40, 24) and np.abs(noise).max() <= bound
    assert abs(np.abs(noise).mean() - bound / 2) < 0.05 * bound  # uniform on [-b, b]


def _rotary_free(tiny_qwen2, out):
    """The tiny Qwen2 with rotary positions switched off: rope_theta = 1e300 leaves only the
    first rotary pair turning, and its query and key rows are zeroed in every head."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(str(tiny_qwen2))
    config.rope_parameters = {**(config.rope_parameters or {}), "rope_theta": 1e300}
    model = AutoModelForCausalLM.from_pretrained(str(tiny_qwen2), config=config)
    head_dim = config.hidden_size // config.num_attention_heads
    with torch.no_grad():
        for layer in model.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj):
                for head in range(proj.weight.shape[0] // head_dim):
                    for dim in (0, head_dim // 2):
                        proj.weight[head * head_dim + dim] = 0.0
                        if proj.bias is not None:
                            proj.bias[head * head_dim + dim] = 0.0
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(tiny_qwen2)).save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def rotary_free(tiny_qwen2, tmp_path_factory):
    from rsp_probe.models import load_model

    return load_model(str(_rotary_free(tiny_qwen2, tmp_path_factory.mktemp("rotary-free"))),
                      backend="transformer-lens")


def test_positions_only_without_rotary_is_the_baseline(rotary_free, tmp_path):
    import rsp_probe

    model = rotary_free
    for law, same in (("positions-only", True), ("gaussian", False)):
        run, _ = rsp_probe.entropy(model=model, rsp_tokens=(0, 3), law=law, samples=1,
                                   temperature=0.0, n_prompts=4, max_new_tokens=12,
                                   out=str(tmp_path / law), quiet=True)
        records = run.trajectories.set_index(["prompt_id", "condition"])["generated_token_ids"]
        pairs = [(list(records[(p, "k0")]), list(records[(p, "k3")]))
                 for p in run.trajectories["prompt_id"].unique()]
        assert all(a == b for a, b in pairs) == same, law


def test_neftune_vectors_are_saved_per_input_position(loaded_qwen2, tmp_path):
    import rsp_probe

    run, _ = rsp_probe.entropy(model=loaded_qwen2, rsp_tokens=(0, 4), law="neftune",
                               samples=1, n_prompts=2, max_new_tokens=4,
                               out=str(tmp_path / "r"), quiet=True)
    from safetensors.numpy import load_file

    vectors = load_file(str(run.path / "rsp.safetensors"))
    for record in run.trajectories.to_dict("records"):
        if record["rsp_tokens"] == 4:
            assert record["rsp_positions"] == []
            assert vectors[record["id"]].shape == (len(record["prompt_token_ids"]),
                                                   run.config["model_info"]["d_model"])


def test_influence_positions_only_without_rotary_has_no_influence(rotary_free, tmp_path):
    """The positions-only control in the teacher-forced influence pass: on the rotary-free
    model nothing of the RSP reaches the logits (KL ~ 0, zero RSP mass). Without the block
    the same draws read the RSP (the entropy test above shows they change the tokens)."""
    import rsp_probe

    run, _ = rsp_probe.influence(model=rotary_free, rsp_tokens=(3,), law="positions-only",
                                 samples=2, n_prompts=2, max_new_tokens=8,
                                 out=str(tmp_path / "r"), quiet=True)
    steps = run.steps
    kl = steps[steps["probe"] == "kl"]["value"].to_numpy()
    mass = steps[steps["probe"] == "rsp_attention"]["value"].to_numpy()
    assert run.config["law"] == "positions-only" and len(kl) == 2 * 2 * 8 and len(mass)
    assert kl.max() < 1e-8 and np.abs(mass).max() == 0.0


def test_influence_neftune_matches_an_hf_forward_with_noisy_embeddings(loaded_qwen2,
                                                                        hf_qwen2, tmp_path):
    """The neftune control in the influence pass: KL(p_noisy || p_base) at every step equals
    plain transformers fed the saved noise added to the prompt's embeddings."""
    from safetensors.numpy import load_file

    import rsp_probe

    run, _ = rsp_probe.influence(model=loaded_qwen2, rsp_tokens=(4,), law="neftune",
                                 samples=2, n_prompts=2, max_new_tokens=6,
                                 out=str(tmp_path / "r"), quiet=True)
    noise = load_file(str(run.path / "rsp.safetensors"))
    table = hf_qwen2.get_input_embeddings().weight.detach()
    kl = run.steps[run.steps["probe"] == "kl"].set_index(["trajectory", "step"])["value"]
    noisy = [r for r in run.trajectories.to_dict("records") if r["condition"] == "k4"]
    assert len(noisy) == 4
    for record in noisy:
        prompt, tokens = list(record["prompt_token_ids"]), list(record["generated_token_ids"])
        assert record["rsp_positions"] == [] and len(tokens) > 1
        ids = torch.tensor(prompt + tokens[:-1])
        embeds = table[ids].clone()
        embeds[:len(prompt)] += torch.from_numpy(noise[record["id"]])
        with torch.inference_mode():
            logp = torch.log_softmax(hf_qwen2(inputs_embeds=embeds[None]).logits[0].double(), -1)
            base = torch.log_softmax(hf_qwen2(input_ids=ids[None]).logits[0].double(), -1)
        first = len(prompt) - 1
        expected = (logp.exp() * (logp - base)).sum(-1)[first:first + len(tokens)]
        measured = [kl[(record["id"], step)] for step in range(1, len(tokens) + 1)]
        np.testing.assert_allclose(measured, expected.numpy(), atol=1e-4)
        assert expected.max() > 1e-6
