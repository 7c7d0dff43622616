"""Hub datasets by id from a local Hugging Face cache built in the test (no network):
presets map the fields and read the reference answer; an uncached id is one line."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from rsp_probe.errors import UsageError
from rsp_probe.tasks import hub

COMMIT = "0123456789abcdef0123456789abcdef01234567"
MATH = [{"problem": "What is 1 + 1?", "solution": "Add: $\\boxed{2}$."},
        {"problem": "Half of 1?", "solution": "It is \\boxed{\\frac{1}{2}}, so \\boxed{0.5}."}]
GSM8K = [{"question": "Mia has 3 and buys 2. How many?", "answer": "3 + 2 = 5 #### 5"}]


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A hub cache in the layout `hf download --repo-type dataset` leaves."""
    import datasets.config
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")

    def add(repo: str, files: dict[str, list[dict]]) -> None:
        root = cache / f"datasets--{repo.replace('/', '--')}"
        (root / "refs").mkdir(parents=True)
        (root / "refs" / "main").write_text(COMMIT)
        for name, rows in files.items():
            target = root / "snapshots" / COMMIT / name
            target.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(rows).to_parquet(target)

    return add


def test_math_preset_reads_the_last_boxed_answer(hub_cache, monkeypatch):
    monkeypatch.setitem(hub.PRESETS, "org/math", hub.PRESETS["EleutherAI/hendrycks_math"])
    hub_cache("org/math", {"data/test-00000-of-00001.parquet": MATH})
    problems = hub.load_hub_dataset("org/math", "test")
    assert [(p.id, p.answer) for p in problems] == [("math-test-0", "2"), ("math-test-1", "0.5")]
    assert problems[0].solution == MATH[0]["solution"]


def test_gsm8k_preset_reads_its_config_folder_and_hash_answer(hub_cache, monkeypatch):
    monkeypatch.setitem(hub.PRESETS, "org/gsm", hub.PRESETS["openai/gsm8k"])
    hub_cache("org/gsm", {"main/test-00000-of-00001.parquet": GSM8K,
                          "socratic/test-00000-of-00001.parquet": [{"x": 1}]})
    (problem,) = hub.load_hub_dataset("org/gsm", "test", limit=1)
    assert (problem.answer, problem.solution) == ("5", "3 + 2 = 5")


def test_uncached_id_says_how_to_download_in_one_line(hub_cache):
    with pytest.raises(UsageError, match="hf download nobody/absent --repo-type dataset") as e:
        hub.load_hub_dataset("nobody/absent", "test")
    assert "\n" not in str(e.value)


def test_unknown_split_is_one_line(hub_cache):
    hub_cache("org/plain", {"data/test-00000-of-00001.parquet": MATH})
    with pytest.raises(UsageError, match="org/plain") as e:
        hub.load_hub_dataset("org/plain", "train", question_field="problem",
                             answer_field="solution")
    assert "\n" not in str(e.value)


def test_a_boxed_answer_field_of_a_local_file(tmp_path):
    """Minerva Math / College Math as local files: FIELD:boxed reads the last \\boxed{}."""
    file = tmp_path / "minerva.jsonl"
    file.write_text("".join(json.dumps(r) + "\n" for r in MATH))
    problems = hub.load_dataset_problems(str(file), "test", None, "problem", "solution:boxed")
    assert [p.answer for p in problems] == ["2", "0.5"]
    file.write_text(json.dumps({"problem": "q", "solution": "no box"}) + "\n")
    with pytest.raises(UsageError, match="no \\\\boxed"):
        hub.load_dataset_problems(str(file), "test", None, "problem", "solution:boxed")


def test_a_hub_dataset_runs_end_to_end(hub_cache, tiny_qwen2, tmp_path):
    from rsp_probe.cli import main

    hub_cache("org/math2", {"data/test-00000-of-00001.parquet": MATH})
    out = tmp_path / "run"
    assert main(["entropy", "--model", str(tiny_qwen2), "--dataset", "org/math2",
                 "--answer-field", "solution", "--limit", "2", "--samples", "1",
                 "--rsp-tokens", "1", "--max-new-tokens", "2", "--out", str(out),
                 "--quiet"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"] == "org/math2" and config["n_prompts"] == 2


def test_a_chat_model_on_a_hub_benchmark_end_to_end(hub_cache, tiny_qwen2, tmp_path,
                                                    monkeypatch):
    """A tokenizer with its own chat template (auto uses it, with the math instruction) on
    a cached MATH-style benchmark: the run records the instruction and grades boxed."""
    from transformers import AutoTokenizer

    from rsp_probe.cli import main

    monkeypatch.setitem(hub.PRESETS, "org/math3", hub.PRESETS["EleutherAI/hendrycks_math"])
    hub_cache("org/math3", {"data/test-00000-of-00001.parquet": MATH})
    chat_model = tmp_path / "chat-model"
    shutil.copytree(tiny_qwen2, chat_model)
    tokenizer = AutoTokenizer.from_pretrained(str(chat_model))
    tokenizer.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}"
                               "{% endfor %}{% if add_generation_prompt %}<|a|>{% endif %}")
    tokenizer.save_pretrained(str(chat_model))
    out = tmp_path / "run"
    assert main(["entropy", "--model", str(chat_model), "--dataset", "org/math3",
                 "--n-prompts", "2", "--samples", "1", "--rsp-tokens", "1",
                 "--max-new-tokens", "2", "--out", str(out), "--quiet"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["prompt"]["chat"] and config["prompt"]["name"] == "math-cot"
    assert config["prompt"]["answer_format"] == "boxed"
    records = [json.loads(line) for line in (out / "trajectories.jsonl").open()]
    assert {r["reference_answer"] for r in records} == {"2", "0.5"}


# Rows in the layout of Qwen2.5-Math's evaluation data (data/<benchmark>/test.jsonl); its
# parser reads Minerva's reference as the last \boxed{} of "solution" and College Math's as
# "answer" without "$" (evaluation/parser.py, parse_ground_truth).
MINERVA = [{"problem": "Each of the two Magellan telescopes has a diameter of $6.5$ m. ...",
            "solution": "\\[\ns=\\frac{45}{3600} \\frac{\\pi}{180} 7200=\\boxed{1.6} "
                        "\\mathrm{~cm}\n\\]",
            "type": "Introduction to Astronomy (8.282J Spring 2006)", "idx": 0}]
COLLEGE = [{"question": "Evaluate $\\lim_{x \\to 0} \\frac{\\sin(-2x)}{x}$.", "answer": "$-2$"},
           {"question": "How many subsets has a 3-element set?", "answer": "8"}]


@pytest.mark.parametrize(("benchmark", "rows", "questions", "answers"), [
    ("minerva_math", MINERVA, [MINERVA[0]["problem"]], ["1.6"]),
    ("college_math", COLLEGE, [r["question"] for r in COLLEGE], ["-2", "8"]),
])
def test_minerva_and_college_math_files_in_qwen_math_layout(tmp_path, benchmark, rows,
                                                            questions, answers):
    file = tmp_path / "data" / benchmark / "test.jsonl"
    file.parent.mkdir(parents=True)
    file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    problems = hub.load_dataset_problems(str(file), "test", None)
    assert [(p.question, p.answer) for p in problems] == list(zip(questions, answers))


def test_a_file_preset_yields_to_named_fields(tmp_path):
    """--answer-field names the reference: the preset's reading of it does not apply."""
    file = tmp_path / "minerva_math" / "test.jsonl"
    file.parent.mkdir()
    file.write_text(json.dumps(MINERVA[0]) + "\n")
    (problem,) = hub.load_dataset_problems(str(file), "test", None, answer_field="type")
    assert problem.answer == MINERVA[0]["type"]
    other = tmp_path / "other" / "test.jsonl"  # any other folder: no preset, no boxed reading
    other.parent.mkdir()
    other.write_text(json.dumps({"problem": "q", "answer": "$-2$"}) + "\n")
    assert hub.load_dataset_problems(str(other), "test", None)[0].answer == "$-2$"
