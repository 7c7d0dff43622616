"""The embedded default model: plain transformers loads it, our loader agrees with it, its
tokenizer round-trips the task's text, and train-toy --quick runs end to end."""

from __future__ import annotations

import pytest
import torch

from rsp_probe.cli import main
from rsp_probe.models import DEFAULT_MODEL_DIR, load_model
from rsp_probe.sampler import Job, generate
from rsp_probe.tasks.arithmetic import DEFAULT_TASK, is_correct
from rsp_probe.tasks.arithmetic import generate as generate_problems
from rsp_probe.tasks.prompts import encode_plain


@pytest.fixture(scope="module")
def default_model():
    return load_model()


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
    for problem in generate_problems(DEFAULT_TASK, "test", 200, seed=3):
        for text in (problem.question, "\nAnswer:", " " + problem.solution):
            for tokenizer in tokenizers:
                ids = tokenizer(text, add_special_tokens=False).input_ids
                assert tokenizer.decode(ids) == text


def test_the_card_states_the_measured_quality():
    card = (DEFAULT_MODEL_DIR / "README.md").read_text()
    for needle in ("parameters", "greedy", "pass@8", "random real tokens", "k=16, prefix",
                   "rsp-probe model-card"):
        assert needle in card


def test_smoke_train_toy_quick(tmp_path, capsys):
    """Smoke test: train-toy --quick runs end to end and writes a loadable checkpoint."""
    out = tmp_path / "toy"
    assert main(["train-toy", "--out", str(out), "--quick", "--quiet"]) == 0
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    card = (out / "README.md").read_text()
    assert "## Quality on 16 held-out test problems" in card and "stop_step" not in card
    load_model(str(out))  # loads through the same path as every model
