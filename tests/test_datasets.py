"""Loading problems from local files and the local Hugging Face cache, never the network."""

import json
import socket
import time

import pandas as pd
import pytest

from rsp_probe.errors import UsageError
from rsp_probe.tasks.datasets import load_cached_hf_dataset, load_dataset_file
from rsp_probe.tasks.problem import Problem

MATH500 = [
    {
        "problem": "What is $1+1$?",
        "solution": "It is $\\boxed{2}$.",
        "answer": "2",
        "subject": "Algebra",
        "level": 1,
        "unique_id": "test/algebra/1.json",
    },
    {
        "problem": "Half of one?",
        "solution": "$\\frac{1}{2}$",
        "answer": "\\frac{1}{2}",
        "unique_id": "test/algebra/2.json",
    },
]
GSM8K = [
    {
        "question": "Mia has 2 pens and buys 1,000 more. How many?",
        "answer": "2 + 1000 = <<2+1000=1002>>1002\n#### 1,002",
    },
    {"question": "3 - 1?", "answer": "3 - 1 = 2\n#### 2"},
]


def _write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_math500_shape(tmp_path):
    problems = load_dataset_file(_write_jsonl(tmp_path / "math500.jsonl", MATH500))
    assert problems == [
        Problem("test/algebra/1.json", "What is $1+1$?", "2", "It is $\\boxed{2}$."),
        Problem("test/algebra/2.json", "Half of one?", "\\frac{1}{2}", "$\\frac{1}{2}$"),
    ]


def test_gsm8k_shape_splits_answer_and_rationale(tmp_path):
    problems = load_dataset_file(_write_jsonl(tmp_path / "gsm8k.jsonl", GSM8K))
    assert problems[0] == Problem(
        "gsm8k-0", GSM8K[0]["question"], "1002", "2 + 1000 = <<2+1000=1002>>1002"
    )
    assert [p.id for p in problems] == ["gsm8k-0", "gsm8k-1"]
    assert problems[1].answer == "2"


def test_parquet_and_limit(tmp_path):
    path = tmp_path / "gsm.parquet"
    pd.DataFrame(GSM8K).to_parquet(path)
    problems = load_dataset_file(path, limit=1)
    assert [(p.id, p.answer) for p in problems] == [("gsm-0", "1002")]


def test_generic_fields(tmp_path):
    records = [{"id": 17, "prompt": "2*3?", "target": 6}, {"prompt": "2*4?", "target": 8}]
    path = _write_jsonl(tmp_path / "mine.jsonl", records)
    problems = load_dataset_file(path, question_field="prompt", answer_field="target")
    assert problems == [Problem("17", "2*3?", "6"), Problem("mine-1", "2*4?", "8")]


@pytest.mark.parametrize(
    ("content", "kwargs", "message"),
    [
        (
            '{"problem": "a", "answer": "1"}\n' * 6 + '{"problem": "b", answer}\n',
            {},
            "data.jsonl:7: not valid JSON: ",
        ),
        (
            '{"problem": "a", "answer": "1"}\n{"problem": "b"}\n',
            {},
            "data.jsonl:2: missing field 'answer'",
        ),
        ('{"prompt": "a", "answer": "1"}\n', {}, "data.jsonl:1: no question field"),
        (
            '{"problem": "a", "answer": "1"}\n',
            {"question_field": "prompt"},
            "data.jsonl:1: missing field 'prompt'",
        ),
        ("[1, 2]\n", {}, "data.jsonl:1: expected an object, got list"),
        ("\n", {}, "no records"),
    ],
)
def test_bad_jsonl_says_where(tmp_path, content, kwargs, message):
    path = tmp_path / "data.jsonl"
    path.write_text(content)
    with pytest.raises(UsageError) as info:
        load_dataset_file(path, **kwargs)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        load_dataset_file(tmp_path / "absent.jsonl")
    (tmp_path / "data.csv").write_text("problem,answer\n")
    with pytest.raises(UsageError, match=r"supported: \.jsonl, \.parquet"):
        load_dataset_file(tmp_path / "data.csv")


@pytest.fixture
def no_network(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_uncached_hf_dataset_is_refused_at_once(tmp_path, no_network):
    t0 = time.monotonic()
    with pytest.raises(UsageError, match="'nobody/not-cached' is not in the local"):
        load_cached_hf_dataset("nobody/not-cached", "test", cache_dir=tmp_path / "cache")
    assert time.monotonic() - t0 < 10.0


def test_cached_hf_dataset_is_read_offline(tmp_path, monkeypatch, no_network):
    import datasets

    src = tmp_path / "toyset"
    src.mkdir()
    pd.DataFrame(MATH500).drop(columns=["unique_id"]).to_parquet(src / "test-00000.parquet")
    monkeypatch.chdir(tmp_path)
    datasets.load_dataset("toyset", split="test", cache_dir=str(tmp_path / "cache"))  # caches it
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # "toyset" is no longer a local folder
    problems = load_cached_hf_dataset("toyset", "test", cache_dir=tmp_path / "cache")
    assert [(p.id, p.answer) for p in problems] == [
        ("toyset-test-0", "2"),
        ("toyset-test-1", "\\frac{1}{2}"),
    ]
