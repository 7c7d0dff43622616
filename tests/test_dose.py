"""`rsp-probe dose` end to end on a tiny model, and the score-shift dose against the
teacher-forced attention of the influence probe and a full knockout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rsp_probe.sampler import Job


def test_score_shift_zero_is_the_plain_forward_and_large_negative_is_blocked(loaded_qwen2):
    from rsp_probe.interventions.score_shift import score_shift
    from rsp_probe.probes.influence import teacher_forced
    from rsp_probe.rsp import build_inputs_embeds

    generator = torch.Generator().manual_seed(0)
    ids = [loaded_qwen2.tokenizer.bos_token_id, *range(20, 30), -1, -1, -1, 40, 41]
    job = Job("j", ids, [11, 12, 13], 2 * torch.randn(3, 64, generator=generator), 0.0, 1.0, 0)
    tokens, step = [50, 51, 52, 53], 3
    masses, kls = score_shift(loaded_qwen2, job, tokens, step, [-200.0, 0.0, 3.0])
    table = loaded_qwen2.embedding_table
    embeds = torch.cat([build_inputs_embeds(table, ids, job.rsp_positions, job.rsp),
                        table[torch.tensor(tokens[:-1])]])[None]
    _, attention = teacher_forced(loaded_qwen2, embeds, len(ids) - 1, len(tokens),
                                  job.rsp_positions)
    np.testing.assert_allclose(masses[1], attention[0, step - 1].mean().item(), rtol=1e-5)
    assert masses[0] < 1e-12 and kls[0] < 1e-9  # beta -> -inf is the knockout
    assert masses[2] > masses[1] and kls[2] > kls[1] > 0


def test_dose_command_end_to_end(loaded_qwen2, tmp_path):
    import rsp_probe

    run, table = rsp_probe.dose(model=loaded_qwen2, rsp_tokens=(1, 4), sigma_scales=("2",),
                                samples=2, n_prompts=2, max_new_tokens=6, pass_k=(1, 2),
                                out=str(tmp_path / "r"), quiet=True)
    assert list(table["condition"]) == ["k0", "k1", "k4", "k4-sigma2"]
    rows = table.set_index("condition")
    assert rows.loc["k0", "same_as_k0"] == 1.0 and rows.loc["k4", "kl_step1"] > 0
    assert np.isnan(rows.loc["k0", "kl_step1"])  # the baseline has no KL against itself
    shifts = run.table("score_shift.parquet")
    assert set(shifts["condition"]) == {"k1", "k4", "k4-sigma2"}
    assert (run.path / "figure-dose.png").exists()


@pytest.mark.parametrize("args", [["--sigma-scales", "x"], ["--shift-step", "0"],
                                  ["--pass-k", "0"]])
def test_dose_bad_input_exits_2(tmp_path, capsys, args):
    from rsp_probe.cli import main

    assert main(["dose", "--out", str(tmp_path / "r"), *args]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_score_shift_matches_an_independent_hf_recomputation(loaded_qwen2, hf_qwen2):
    """Eager attention adds its 4D mask to the scores, so a mask holding beta on the RSP
    columns of one row (the lowest float to block them) is the score shift, recomputed
    from scratch: the RSP mass (mean over layers and heads) and the KL against the blocked
    row agree with rsp_probe's taps."""
    from rsp_probe.interventions.score_shift import score_shift

    generator = torch.Generator().manual_seed(1)
    ids = [loaded_qwen2.tokenizer.bos_token_id, *range(20, 30), -1, -1, 40, 41]
    job = Job("j", ids, [11, 12], 2 * torch.randn(2, 64, generator=generator), 0.0, 1.0, 0)
    tokens, step, betas = [50, 51, 52, 53], 3, [-2.0, 0.0, 1.5]
    masses, kls = score_shift(loaded_qwen2, job, tokens, step, betas)
    table = hf_qwen2.get_input_embeddings().weight.detach()
    embeds = table[[max(i, 0) for i in ids] + tokens[:step - 1]].clone()
    embeds[job.rsp_positions] = job.rsp
    n_rows, row = embeds.shape[0], len(ids) - 1 + step - 1
    lowest = torch.finfo(torch.float32).min

    def forward(shift: float):
        mask = torch.zeros(n_rows, n_rows).masked_fill(
            torch.arange(n_rows)[None, :] > torch.arange(n_rows)[:, None], lowest)
        mask[row, job.rsp_positions] = shift
        handles = [layer.self_attn.register_forward_pre_hook(
            lambda module, args, kwargs: (args, {**kwargs, "attention_mask": mask[None, None]}),
            with_kwargs=True) for layer in hf_qwen2.model.layers]
        try:
            with torch.inference_mode():
                out = hf_qwen2(inputs_embeds=embeds[None], output_attentions=True)
        finally:
            for handle in handles:
                handle.remove()
        mass = torch.stack([a[0, :, row, job.rsp_positions].sum(-1) for a in out.attentions])
        return torch.log_softmax(out.logits[0, row].double(), -1), float(mass.mean())

    blocked, _ = forward(lowest)
    for beta, mass, kl in zip(betas, masses, kls):
        logp, expected_mass = forward(beta)
        np.testing.assert_allclose(mass, expected_mass, rtol=1e-5)
        np.testing.assert_allclose(kl, float((logp.exp() * (logp - blocked)).sum()), atol=1e-5)
    assert kls[2] > kls[1] > kls[0] > 0
