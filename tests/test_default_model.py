"""The embedded default model: plain transformers loads it, our loader agrees with it, its
tokenizer round-trips the task's text, and train-toy --quick runs end to end."""

from __future__ import annotations

import random

import torch

from rsp_probe.cli import main
from rsp_probe.models import DEFAULT_MODEL_DIR, load_model
from rsp_probe.sampler import Job, generate
from rsp_probe.tasks.arithmetic import DEFAULT_TASK, generate_with_plans, is_correct
from rsp_probe.tasks.arithmetic import generate as generate_problems
from rsp_probe.tasks.prompts import encode_plain
from rsp_probe.tasks.strategies import STRATEGIES, write_solution


def test_plain_transformers_loads_it_and_agrees_with_our_sampler(default_model):
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(str(DEFAULT_MODEL_DIR)).eval()
    problems = generate_problems(DEFAULT_TASK, "test", 4, seed=0)
    prompts = [encode_plain(default_model.tokenizer, p.question).token_ids for p in problems]
    ours = generate(default_model, [Job(str(i), ids, [], torch.zeros(0, 256), 0.0, 1.0, 0)
                                    for i, ids in enumerate(prompts)], max_new_tokens=96)
    for ids, trajectory in zip(prompts, ours):
        with torch.no_grad():
            ref = hf.generate(torch.tensor([ids]), max_new_tokens=96, do_sample=False)[0]
        assert trajectory.generated_token_ids == ref[len(ids):].tolist()
    texts = [default_model.tokenizer.decode(t.generated_token_ids, skip_special_tokens=True)
             for t in ours]
    assert sum(is_correct(t, p.answer) for t, p in zip(texts, problems)) >= 2  # it reasons


def test_the_tokenizer_round_trips_the_task_text(default_model):
    tokenizers = (default_model.tokenizer, default_model.bridge.tokenizer)
    rng = random.Random(0)
    for problem, plan in generate_with_plans(DEFAULT_TASK, "test", 100, seed=3):
        solutions = [write_solution(plan, s, rng, check) for s in STRATEGIES
                     for check in (False, True)]
        for text in (problem.question, "\nAnswer:", *(" " + s for s in solutions)):
            for tokenizer in tokenizers:
                ids = tokenizer(text, add_special_tokens=False).input_ids
                assert tokenizer.decode(ids) == text


def test_the_card_states_the_measured_quality():
    card = (DEFAULT_MODEL_DIR / "README.md").read_text()
    for needle in ("parameters", "greedy", "pass@8", "random real tokens", "k=16, prefix",
                   "rsp-probe model-card", "distinct strategies among 8", "Accuracy per strategy",
                   "never sees a random vector", "no RSP measurement was used to choose"):
        assert needle in card


def test_smoke_train_toy_quick(tmp_path, capsys, monkeypatch):
    """Smoke test: train-toy --quick runs end to end and writes a loadable checkpoint; its
    card measurement saves no run, so it leaves nothing (no lock file) in ./runs."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "toy"
    assert main(["train-toy", "--out", str(out), "--quick", "--quiet"]) == 0
    assert not (tmp_path / "runs").exists()
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    card = (out / "README.md").read_text()
    assert "## Quality on 4 held-out test problems" in card and "stop_step" not in card
    load_model(str(out), backend="transformer-lens")  # loads through the same path as every model


def test_training_is_deterministic_and_continues_from_init(tmp_path, tiny_qwen2):
    import hashlib
    import json
    from dataclasses import replace

    from safetensors.numpy import load_file

    from rsp_probe.toy.train import QUICK, TrainConfig, train

    config = replace(TrainConfig(), **QUICK, init=str(tiny_qwen2), stop_step=3, threads=1)
    logs = [train(tmp_path / name, config, progress=False) for name in ("a", "b")]
    weights = [load_file(str(tmp_path / name / "model.safetensors")) for name in ("a", "b")]
    assert weights[0].keys() == weights[1].keys()
    assert all((weights[0][key] == weights[1][key]).all() for key in weights[0])
    initial = load_file(str(tiny_qwen2 / "model.safetensors"))
    assert any((initial[key] != weights[0][key]).any() for key in initial)  # it trained
    assert logs[0]["steps"] == 3 and logs[0]["stop_reason"] == "stop_step"
    sha = hashlib.sha256((tiny_qwen2 / "model.safetensors").read_bytes()).hexdigest()
    assert json.loads((tmp_path / "a" / "training_log.json").read_text())["init_sha256"] == sha
    vocab = lambda path: json.loads((path / "tokenizer.json").read_text())["model"]["vocab"]
    assert vocab(tmp_path / "a") == vocab(tiny_qwen2)  # the init's tokenizer, not a new one
    assert sum(logs[0]["training_strategies"].values()) == config.n_train


def test_train_toy_refuses_an_init_without_weights(tmp_path, capsys):
    assert main(["train-toy", "--out", str(tmp_path / "x"), "--quick", "--quiet",
                 "--init", str(tmp_path)]) == 2
    assert "no model.safetensors" in capsys.readouterr().err
