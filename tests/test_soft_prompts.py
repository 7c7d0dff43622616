"""Trained soft prompts (#16): tuning lowers the answer loss and is deterministic from its
seed; a saved prompt round-trips and is injected bit-exactly (greedy tokens equal Hugging
Face generate(inputs_embeds=...) with the same vectors, read back independently); a prompt
of another width, for another model or of another k is refused in one line, exit 2, before
the model loads."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rsp_probe.cli import main
from rsp_probe.experiments.base import get_experiment
from rsp_probe.models import load_model, weights_sha256
from rsp_probe.rsp import draw_rsp, fit_law
from rsp_probe.soft_prompts.io import model_identity, read_card, save_soft_prompt
from rsp_probe.soft_prompts.options import TuneOptions
from rsp_probe.soft_prompts.train import tune, tune_and_save

TINY = dict(rsp_tokens=2, steps=4, batch_size=4, n_train=4, n_validation=2, max_new_tokens=4,
            quiet=True)


@pytest.fixture(scope="module")
def hf_backend(tiny_qwen2):
    return load_model(str(tiny_qwen2), backend="hf")


@pytest.fixture(scope="module")
def saved_prompt(hf_backend, tmp_path_factory):
    out = tmp_path_factory.mktemp("soft") / "prompt.safetensors"
    card = tune_and_save(hf_backend, TuneOptions(out=str(out), **TINY))
    return out, card


def test_tuning_lowers_the_answer_loss_and_is_deterministic(hf_backend, saved_prompt):
    options = TuneOptions(**TINY)
    first, log = tune(hf_backend, options)
    again, log_again = tune(hf_backend, options)
    other, _ = tune(hf_backend, dataclasses.replace(options, seed=1))
    assert log["fixed_loss_after"] < log["fixed_loss_before"]  # the same fixed examples
    assert torch.equal(first, again) and log["loss"] == log_again["loss"]
    assert not torch.equal(first, other)
    _, card = saved_prompt  # tune_and_save trained the same options: the same vectors
    assert card["fixed_loss_after"] == log["fixed_loss_after"]


def test_saved_prompt_round_trips_and_is_injected_bit_exactly(tiny_qwen2, hf_qwen2, saved_prompt,
                                                              hf_backend, tmp_path):
    path, card = saved_prompt
    vectors = load_file(str(path))["prompt"]  # read back without rsp_probe
    assert read_card(path) == card and list(vectors.shape) == [2, 64]
    assert card["model_sha256"] == weights_sha256(tiny_qwen2)
    run, _ = get_experiment("entropy")(
        hf_backend, law="trained", soft_prompt=str(path), rsp_tokens=(2,), temperature=0.0,
        samples=2, n_prompts=2, max_new_tokens=8, quiet=True, out=str(tmp_path / "run"))
    saved = run.rsp_vectors()
    table = hf_qwen2.get_input_embeddings().weight
    trained = run.trajectories[run.trajectories["condition"] == "k2"]
    assert len(trained) == 4
    for row in trained.itertuples():
        assert torch.equal(torch.from_numpy(saved[row.id]), vectors)  # every trajectory
        ids = list(row.prompt_token_ids)
        start = list(row.rsp_positions)[0]
        embeds = torch.cat([table[ids[:start]], vectors, table[ids[start:]]])[None]
        with torch.no_grad():
            reference = hf_qwen2.generate(inputs_embeds=embeds, max_new_tokens=8,
                                          do_sample=False,
                                          attention_mask=torch.ones(embeds.shape[:2],
                                                                    dtype=torch.long))[0]
        assert list(row.generated_token_ids) == reference.tolist()


def test_trained_laws():
    table = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
    prompt = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(draw_rsp(fit_law(table, "trained", prompt=prompt), 3, seed=5), prompt)
    silent = fit_law(table, "trained+noise", sigma_scale=0.0, prompt=prompt)
    assert torch.equal(draw_rsp(silent, 3, seed=5), prompt)
    noisy = draw_rsp(fit_law(table, "trained+noise", prompt=prompt), 3, seed=5)
    sigma = table.double().std(unbiased=False)
    assert 0.5 * sigma < (noisy - prompt).double().std() < 1.5 * sigma
    fitted = fit_law(table, "trained-fit", prompt=prompt)
    reference = prompt.double().numpy()
    np.testing.assert_allclose(fitted.mean.numpy(), reference.mean(axis=0))
    np.testing.assert_allclose(float(fitted.std), (reference - reference.mean(0)).std())
    draws = torch.stack([draw_rsp(fitted, 3, seed=s) for s in range(400)]).double()
    np.testing.assert_allclose(draws.mean(dim=(0, 1)).numpy(), reference.mean(0), atol=0.2)


def _bad_prompt(tmp_path, width, identity, k=2):
    path = tmp_path / f"bad-{width}.safetensors"
    save_soft_prompt(path, torch.zeros(k, width), {"placement": "suffix", **identity})
    return path


@pytest.mark.parametrize("case", ["width", "other-model", "k", "missing"])
def test_wrong_prompts_are_refused_before_the_model_loads(case, tiny_qwen2, tiny_llama,
                                                          tmp_path, capsys, monkeypatch):
    own = model_identity(str(tiny_qwen2), weights_sha256(tiny_qwen2), None)
    other = model_identity(str(tiny_llama), weights_sha256(tiny_llama), None)
    prompt = {"width": lambda: _bad_prompt(tmp_path, 32, own),
              "other-model": lambda: _bad_prompt(tmp_path, 64, other),
              "k": lambda: _bad_prompt(tmp_path, 64, own, k=3),
              "missing": lambda: None}[case]()

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("rsp_probe.models.load_model", no_model)
    out = tmp_path / "run"
    argv = ["entropy", "--model", str(tiny_qwen2), "--law", "trained", "--rsp-tokens", "2",
            "--out", str(out)] + ([] if prompt is None else ["--soft-prompt", str(prompt)])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert {"width": "width 32", "other-model": "another model", "k": "k=3",
            "missing": "needs --soft-prompt"}[case] in err
    assert not out.exists()


def test_compare_prompts_tables_against_the_trajectories(hf_backend, saved_prompt, tmp_path):
    from rsp_probe.analysis.compare_prompts import PAIRED_FILE

    path, _ = saved_prompt
    run, table = get_experiment("compare-prompts")(
        hf_backend, soft_prompt=str(path), rsp_tokens=(2,), arms=("rsp", "trained", "none",
                                                                   "trained-fit"),
        samples=2, pass_k=(1, 2), n_prompts=3, max_new_tokens=4, quiet=True,
        out=str(tmp_path / "c"))
    records = run.trajectories
    # `none` is decoded first whatever the order given: the others are read along its twins
    assert list(table["arm"]) == ["none", "rsp", "trained", "trained-fit"]
    vectors = run.rsp_vectors()
    prompt = load_file(str(path))["prompt"].numpy()
    for arm, draws in (("trained", 1), ("greedy-trained", 1), ("trained-fit", 6)):
        ids = records.loc[records["condition"] == arm, "id"]
        assert len({vectors[i].tobytes() for i in ids}) == draws  # fixed vs redrawn
        if draws == 1:
            np.testing.assert_array_equal(vectors[ids.iloc[0]], prompt)
    greedy = records[records["condition"] == "greedy-trained"]
    assert len(greedy) == 3  # deterministic arm: one greedy trajectory per prompt
    row = table.set_index("arm").loc["trained"]
    assert row["greedy_accuracy"] == pytest.approx(greedy["correct"].astype(float).mean())
    per_prompt = records.assign(c=records["correct"].astype(float)).groupby(
        ["condition", "prompt_id"])["c"].mean()
    paired = run.table(PAIRED_FILE).set_index(["a", "b", "measure"])
    expected = (per_prompt["trained"] - per_prompt["none"]).mean()
    assert paired.loc[("trained", "none", "pass@1"), "diff"] == pytest.approx(expected)
    assert (run.path / "figure-compare_prompts.png").exists()


def test_a_local_dataset_is_split_and_its_answers_are_the_targets(tokenizer_dir, tmp_path):
    import json

    from transformers import AutoTokenizer

    from rsp_probe.soft_prompts.train import Examples, split_problems

    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps({"q": f"Mia has {i} pens.", "a": str(i)}) + "\n"
                            for i in range(5)))
    options = TuneOptions(dataset=str(data), question_field="q", answer_field="a",
                          n_validation=2)
    train, validation = split_problems(options)
    assert [p.answer for p in train] == ["0", "1", "2"]
    assert [p.answer for p in validation] == ["3", "4"]  # held out: the last problems
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    examples = Examples(tokenizer, train, k=2, placement="suffix", chat=False)
    for (ids, start, answer), problem in zip(examples.rows, train):
        assert ids[start:start + 2] == [-1, -1] and ids.count(-1) == 2
        expected = tokenizer(" " + problem.answer, add_special_tokens=False).input_ids
        assert answer == expected + [tokenizer.eos_token_id]
