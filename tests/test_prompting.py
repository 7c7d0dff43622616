"""Prompt templates, chat templates and system prompts: what the model reads, what is
recorded in config.json, and that grading follows the instruction given."""

from __future__ import annotations

import json

import pytest

from rsp_probe.cli import main
from rsp_probe.config import DataConfig
from rsp_probe.errors import UsageError
from rsp_probe.tasks.grading import grade
from rsp_probe.tasks.problem import Problem
from rsp_probe.tasks.prompts import encode_problem, prompt_format
from rsp_probe.tasks.templates import MATH_COT, PLAIN_CUE, template_for

PROBLEM = Problem("p0", "Mia has 12 pencils and buys 2. How many?", "14")
CHAT = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}")


@pytest.fixture(scope="module")
def tokenizer(tiny_qwen2):
    from rsp_probe.models import load_tokenizer

    return load_tokenizer(tiny_qwen2)


def _text(tokenizer, encoded):
    return tokenizer.decode(encoded.token_ids)


def test_presets_and_files(tmp_path):
    assert template_for("plain", chat=False).after == PLAIN_CUE
    assert template_for("auto", chat=False).name == "plain"
    assert template_for("auto", chat=True).after == MATH_COT
    assert template_for("math-cot", chat=False).asks_boxed
    assert not template_for("plain", chat=True).asks_boxed
    file = tmp_path / "t.txt"
    file.write_text("Solve: {question}\nFinal answer in \\boxed{}.\n")
    made = template_for(str(file), chat=False)
    assert (made.before, made.after, made.asks_boxed) == (
        "Solve: ", "\nFinal answer in \\boxed{}.", True)
    shots = tmp_path / "shots.jsonl"
    shots.write_text(json.dumps({"question": "1 + 1?", "answer": "2"}) + "\n")
    few = template_for(f"few-shot:{shots}", chat=False)
    assert few.before == "1 + 1?\nAnswer: 2\n\n" and few.after == PLAIN_CUE


@pytest.mark.parametrize("spec,match", [
    ("nonsense", "not one of auto, plain, math-cot"),
    ("few-shot:/no/such.jsonl", "no such file"),
])
def test_template_misuse_is_one_line(spec, match):
    with pytest.raises(UsageError, match=match) as caught:
        template_for(spec, chat=False)
    assert "\n" not in str(caught.value)


def test_template_file_must_hold_the_question_once(tmp_path):
    file = tmp_path / "t.txt"
    file.write_text("no slot here")
    with pytest.raises(UsageError, match="exactly once"):
        template_for(str(file), chat=False)


def test_plain_prompt_is_unchanged_by_the_template_machinery(tokenizer):
    """auto on a base model: [BOS] question, cue, as the default model was trained on."""
    encoded = encode_problem(tokenizer, PROBLEM, prompt_format(tokenizer, DataConfig()))
    assert encoded.cue == tokenizer(PLAIN_CUE, add_special_tokens=False).input_ids
    assert encoded.question == tokenizer(PROBLEM.question, add_special_tokens=False).input_ids


def test_chat_template_file_and_system_prompt_shape_the_input(tokenizer, tmp_path):
    jinja = tmp_path / "chat.jinja"
    jinja.write_text(CHAT)
    data = DataConfig(chat_template=str(jinja), system_prompt="Be brief.",
                      prompt_template="math-cot")
    fmt = prompt_format(tokenizer, data)
    text = _text(tokenizer, encode_problem(tokenizer, PROBLEM, fmt))
    assert text.index("Be brief.") < text.index("Mia") < text.index("boxed")
    assert text.rstrip().endswith("<|assistant|>")
    assert fmt.to_dict()["answer_format"] == "boxed" and fmt.to_dict()["chat"]


@pytest.mark.parametrize("options,match", [
    ({"chat_template": "on"}, "has no chat template"),
    ({"system_prompt": "hi"}, "needs a chat template"),
    ({"chat_template": "/no/such.jinja"}, "no such file"),
])
def test_prompt_misuse_is_one_line(tokenizer, options, match):
    with pytest.raises(UsageError, match=match) as caught:
        prompt_format(tokenizer, DataConfig(**options))
    assert "\n" not in str(caught.value)


def test_chat_template_on_for_the_default_model_exits_2_in_one_line(tmp_path, capsys):
    assert main(["entropy", "--chat-template", "on", "--out", str(tmp_path / "r"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "has no chat template" in err and len(err.splitlines()) == 1


def test_grading_follows_the_instruction():
    texts = ["12 + 2 = 14, so the answer is \\boxed{14}.", "#### 14", "\\boxed{13} #### 14"]
    boxed = grade(DataConfig(), texts, ["14"] * 3, answer_format="boxed")
    hashed = grade(DataConfig(), texts, ["14"] * 3)
    assert [g.correct for g in boxed] == [True, True, False]
    assert [g.correct for g in hashed] == [False, True, True]


def test_a_chat_run_records_its_instruction_and_grades_boxed(tiny_qwen2, tmp_path):
    jinja = tmp_path / "chat.jinja"
    jinja.write_text(CHAT)
    template = tmp_path / "short.txt"  # the tiny tokenizer spends many tokens on MATH_COT
    template.write_text("{question}\n\\boxed{}")
    out = tmp_path / "run"
    assert main(["entropy", "--model", str(tiny_qwen2), "--chat-template", str(jinja),
                 "--prompt-template", str(template),
                 "--system-prompt", "Be brief.", "--n-prompts", "1", "--samples", "1",
                 "--rsp-tokens", "2", "--max-new-tokens", "3", "--out", str(out),
                 "--quiet"]) == 0
    prompt = json.loads((out / "config.json").read_text())["prompt"]
    assert prompt["after"] == "\n\\boxed{}" and prompt["answer_format"] == "boxed"
    assert prompt["system_prompt"] == "Be brief." and prompt["chat_template_file"]


def test_a_broken_chat_template_file_is_one_line(tokenizer, tmp_path):
    jinja = tmp_path / "broken.jinja"
    jinja.write_text("{% for m in messages %}{{ m['content'] }")
    fmt = prompt_format(tokenizer, DataConfig(chat_template=str(jinja)))
    with pytest.raises(UsageError, match="chat template cannot be rendered") as caught:
        encode_problem(tokenizer, PROBLEM, fmt)
    assert "\n" not in str(caught.value)
