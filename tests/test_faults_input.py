"""Hostile input, as issue 15 listed it: each case gives one line on stderr and exit code 2
(or, for a folder of runs, a one-line warning and a skip), no traceback, and never touches an
earlier run. Checks that need no model must fail before the model is loaded."""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path

import pytest

import rsp_probe.experiments.common as common
from rsp_probe.cli import main
from rsp_probe.runs import find_runs, write_json

TINY = ["--n-prompts", "2", "--samples", "1", "--max-new-tokens", "4", "--quiet"]


def _one_line_error(capsys, code: int, expected: str) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err and expected in err, err
    return err


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if an experiment gets as far as loading its model."""
    def refuse(model_config):
        raise AssertionError("the model was loaded before a model-free check")

    monkeypatch.setattr(common, "_load", refuse)


def _copy_checkpoint(src: Path, dst: Path, edit=None) -> Path:
    shutil.copytree(src, dst)
    if edit:
        edit(dst)
    return dst


def _set_config(**changes):
    def edit(path: Path):
        config = json.loads((path / "config.json").read_text())
        config.update(changes)
        (path / "config.json").write_text(json.dumps(config))
    return edit


def _truncate(size: int):
    def edit(path: Path):
        with open(path / "model.safetensors", "r+b") as handle:
            handle.truncate(size)
    return edit


def _drop_tokenizer(path: Path):
    for file in path.glob("tokenizer*"):
        file.unlink()


@pytest.mark.parametrize("edit, expected", [
    (_set_config(architectures=["BertModel"], model_type="bert"),
     "BertModel is not a causal (decoder-only) language model"),
    (_set_config(architectures=None, model_type="bert"),
     "model_type 'bert' is not a causal (decoder-only) language model"),
    (_truncate(0), "model.safetensors: empty, truncated or not a safetensors file (0 bytes)"),
    (_truncate(1000), "model.safetensors: empty, truncated or not a safetensors file"),
    (_truncate(60_000), "model.safetensors: truncated or damaged (60000 bytes"),
    (_drop_tokenizer, "no tokenizer files"),
], ids=["bert", "bert-no-architectures", "empty-weights", "truncated-header",
        "truncated-data", "no-tokenizer"])
def test_broken_checkpoints_are_one_line_before_loading(tmp_path, tiny_qwen2, capsys, edit,
                                                        expected, no_model_load):
    model = _copy_checkpoint(tiny_qwen2, tmp_path / "model", edit)
    code = main(["entropy", "--model", str(model), "--out", str(tmp_path / "run"), *TINY])
    _one_line_error(capsys, code, expected)
    assert not (tmp_path / "run").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no lock, no staging


def _dataset(tmp_path: Path, lines: list[bytes]) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _good_line(i: int, question: str | None = None) -> bytes:
    return json.dumps({"question": question or f"What is {i} + 1?",
                       "answer": str(i + 1)}).encode()


@pytest.mark.parametrize("args, expected", [
    (lambda t: ["--dataset", str(_dataset(t, [_good_line(0), b'{"question": "caf\xe9", '
                                             b'"answer": "1"}']))],
     "data.jsonl:2: not valid UTF-8"),
    (lambda t: ["--dataset", str((t / "folder.jsonl").mkdir() or t / "folder.jsonl")],
     "folder.jsonl: is a directory, expected a .jsonl or .parquet file"),
    (lambda t: ["--dataset", str(_dataset(t, [_good_line(0), _good_line(1)])),
                "--n-prompts", "3"],
     "--n-prompts 3: "),
    (lambda t: ["--dataset", str(_dataset(t, [_good_line(0, "7 + " * 50_000 + "1?")])),
                "--n-prompts", "1"],
     "do not fit the model's context of 256"),
    (lambda t: ["--rsp-tokens", "100000"], "100"),
    (lambda t: ["--sigma-scale", "nan"], "--sigma-scale must be a finite number, got nan"),
    (lambda t: ["--sigma-scale", "inf"], "--sigma-scale must be a finite number, got inf"),
    (lambda t: ["--temperature", "nan"], "--temperature must be a finite number, got nan"),
    (lambda t: ["--top-p", "nan"], "--top-p must be a finite number"),
], ids=["non-utf8", "dataset-directory", "more-prompts-than-data", "huge-question",
        "huge-k", "sigma-nan", "sigma-inf", "temperature-nan", "top-p-nan"])
def test_bad_experiment_input_is_one_line_before_loading(tmp_path, tiny_qwen2, capsys, args,
                                                         expected, no_model_load):
    code = main(["entropy", "--model", str(tiny_qwen2), "--out", str(tmp_path / "run"),
                 *TINY, *args(tmp_path)])
    err = _one_line_error(capsys, code, expected)
    assert not (tmp_path / "run").exists()
    if "huge-k" in expected:
        assert "input positions (RSP included) do not fit" in err


@pytest.mark.parametrize("command", ["branching", "passk"])
def test_empty_rsp_token_list_is_one_line(tmp_path, tiny_qwen2, capsys, command,
                                          no_model_load):
    code = main([command, "--model", str(tiny_qwen2), "--rsp-tokens", ",",
                 "--out", str(tmp_path / "run"), *TINY])
    _one_line_error(capsys, code, "--rsp-tokens needs at least one value")


def test_unknown_top_level_option_is_named(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--frobnicate"])
    assert exit.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == ("rsp-probe: error: unrecognized option --frobnicate (a command comes first; "
                   "see --help)")


@pytest.mark.parametrize("content, expected", [
    (None, "cannot read the report (No such file or directory)"),
    ("# no markers here\n", "no <!-- BEGIN GENERATED COMPARISON -->"),
])
def test_theory_report_problems_are_one_line(tmp_path, capsys, content, expected):
    report = tmp_path / "report.md"
    if content is not None:
        report.write_text(content)
    (tmp_path / "runs").mkdir()
    code = main(["theory", str(tmp_path / "runs"), "--report", str(report)])
    _one_line_error(capsys, code, expected)
    assert content is None or report.read_text() == content


def test_figures_out_pointing_at_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("keep")
    (tmp_path / "runs").mkdir()
    code = main(["figures", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "file")])
    _one_line_error(capsys, code, "exists and is not a directory")
    assert (tmp_path / "file").read_text() == "keep"


def test_a_model_checkpoint_among_runs_is_not_an_incomplete_run(tmp_path, tiny_qwen2):
    shutil.copytree(tiny_qwen2, tmp_path / "runs" / "checkpoint")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert find_runs([tmp_path / "runs"]) == []
    assert caught == []


def test_json_is_strict(tmp_path):
    with pytest.raises(ValueError, match="not JSON compliant"):
        write_json(tmp_path / "x.json", {"value": math.nan})


def test_successful_attention_run_prints_no_numpy_warnings(loaded_qwen2, tmp_path):
    import rsp_probe

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rsp_probe.attention(model=loaded_qwen2, n_prompts=3, samples=4, max_new_tokens=40,
                            seed=1, out=str(tmp_path / "run"), quiet=True)
    runtime = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert runtime == []
