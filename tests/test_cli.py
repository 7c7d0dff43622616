"""The command line as a user meets it, in real subprocesses: `--help` stays light, and bad
input gives one line on stderr, exit code 2, no traceback and no completed run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HEAVY = ("torch", "transformer_lens", "transformers")


def _env(tmp_path: Path) -> dict[str, str]:
    cache = tmp_path / "hf-home" / "hub"
    cache.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "HF_HOME": str(cache.parent), "HF_HUB_CACHE": str(cache),
            "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}


def _cli(args: list[str], tmp_path: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rsp_probe.cli", *args], cwd=tmp_path,
                          env=_env(tmp_path), capture_output=True, text=True, timeout=timeout,
                          check=False)


def test_help_does_not_import_heavy_modules(tmp_path):
    script = f"""
import sys
from rsp_probe.cli import main
for argv in (["--help"], ["entropy", "--help"]):
    try:
        main(argv)
    except SystemExit as exit:
        assert exit.code == 0, exit.code
import rsp_probe  # the public API is lazy too
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
assert not heavy, heavy
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=_env(tmp_path),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "entropy" in done.stdout and "show" in done.stdout  # the command list
    assert "--rsp-tokens" in done.stdout and "number of RSP vectors" in done.stdout
    assert "--max-new-tokens" in done.stdout and "--overwrite" in done.stdout


# -- bad input -----------------------------------------------------------------------------------

def _dataset(tmp_path: Path, broken_line: int | None = None) -> Path:
    path = tmp_path / "data.jsonl"
    lines = [json.dumps({"question": f"What is {i} + 1?", "answer": str(i + 1)})
             for i in range(5)]
    if broken_line:
        lines[broken_line - 1] = '{"question": "What is 2 + 1?", "answer": '
    path.write_text("\n".join(lines) + "\n")
    return path


def _short_context_model(tmp_path: Path, checkpoint: Path) -> Path:
    model = tmp_path / "ctx40"
    shutil.copytree(checkpoint, model)
    config = json.loads((model / "config.json").read_text())
    config["max_position_embeddings"] = 40
    (model / "config.json").write_text(json.dumps(config))
    return model


def _completed_run(out: Path) -> None:
    from rsp_probe.runs import RunWriter

    writer = RunWriter(out, {"command": "entropy", "note": "keep"})
    writer.write_trajectories([{"id": "t"}], {"t": np.zeros((0, 4))},
                              {"t": {"entropy": np.ones(2, np.float32)}})
    writer.finish({"device": "cpu"})


def _case(name, args, expected):
    """One bad input found before any model is loaded: extra args (after a valid --model)
    and the message it must give."""
    return pytest.param(args, expected, id=name)


CASES = [
    _case("missing-path", lambda t, ck: ["--model", str(t / "no-such-model")],
          "no-such-model: no such model directory"),
    _case("uncached-hub-id", lambda t, ck: ["--model", "nobody/not-a-model"],
          "not in the local Hugging Face cache"),
    _case("negative-rsp-tokens", lambda t, ck: ["--rsp-tokens", "-1"],
          "--rsp-tokens must be >= 0"),
    _case("bad-rsp-tokens", lambda t, ck: ["--rsp-tokens", "4,x"], "comma-separated integers"),
    _case("negative-temperature", lambda t, ck: ["--temperature", "-0.5"],
          "--temperature must be >= 0"),
    _case("zero-samples", lambda t, ck: ["--samples", "0"], "--samples must be >= 1"),
    _case("zero-limit", lambda t, ck: ["--limit", "0"], "--limit must be >= 1"),
    _case("zero-new-tokens", lambda t, ck: ["--max-new-tokens", "0"],
          "--max-new-tokens must be >= 1"),
    _case("malformed-dataset-line", lambda t, ck: ["--dataset", str(_dataset(t, broken_line=3))],
          "data.jsonl:3: not valid JSON"),
    _case("missing-dataset-field",
          lambda t, ck: ["--dataset", str(_dataset(t)), "--question-field", "prompt"],
          "data.jsonl:1: missing field 'prompt'"),
]


def _bad_run(tmp_path: Path, checkpoint: Path, args: list[str]):
    out = tmp_path / "run"
    argv = ["entropy", "--model", str(checkpoint), "--out", str(out), "--n-prompts", "5",
            "--samples", "1", "--max-new-tokens", "4", "--quiet", *args]
    done = _cli(argv, tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stdout == ""
    assert not list(tmp_path.rglob("DONE"))
    return done, out


@pytest.mark.parametrize("args, expected", CASES)
def test_bad_input_gives_one_line_and_exit_code_2(tmp_path, tiny_qwen2, args, expected):
    done, out = _bad_run(tmp_path, tiny_qwen2, args(tmp_path, tiny_qwen2))
    assert not out.exists()  # refused before anything was written
    assert done.stderr.strip().splitlines() == [done.stderr.strip()], done.stderr
    assert done.stderr.startswith("rsp-probe entropy: error: ")
    assert expected in done.stderr, done.stderr


@pytest.fixture(scope="module")
def too_long_prompt(tmp_path_factory, tiny_qwen2):
    """The arithmetic prompts (~150-250 tokens here) against a copy of the model whose context
    is 40: found only once the model is loaded."""
    tmp_path = tmp_path_factory.mktemp("ctx")
    model = _short_context_model(tmp_path, tiny_qwen2)
    return _bad_run(tmp_path, model, [])


def test_prompt_longer_than_context_is_refused(too_long_prompt):
    done, out = too_long_prompt
    assert "rsp-probe entropy: error: prompt " in done.stderr
    assert "do not fit the model's context of 40" in done.stderr
    assert not (out / "DONE").exists()
    if out.exists():  # kept for inspection, marked failed
        assert json.loads((out / "meta.json").read_text())["status"] == "failed"


def test_error_after_model_load_is_the_only_line(too_long_prompt):
    done, _ = too_long_prompt
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_completed_run_is_refused_without_overwrite_and_stays_intact(tmp_path, tiny_qwen2):
    out = tmp_path / "run"
    _completed_run(out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    done = _cli(["entropy", "--model", str(tiny_qwen2), "--out", str(out), "--quiet"], tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        (f"rsp-probe entropy: error: --out {out}: a completed run is already there "
         "(use --overwrite)")]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf-home", "run"]  # no staging left


def test_unknown_choice_is_one_argparse_line(tmp_path):
    done = _cli(["entropy", "--law", "uniform"], tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--law" in lines[0] and "uniform" in lines[0]
    assert "Traceback" not in done.stderr


def test_limit_is_the_number_of_prompts_on_every_experiment_command():
    """--limit (the issue's --dataset/--split/--limit) is --n-prompts under another name."""
    from rsp_probe.cli import build_parser
    from rsp_probe.experiments.base import experiments

    parser = build_parser()
    for name in experiments():
        assert parser.parse_args([name, "--limit", "3"]).n_prompts == 3, name
        assert parser.parse_args([name, "--n-prompts", "5"]).n_prompts == 5, name


SINGLE_DOSE = ("knockout", "compare-prompts", "train-rl")


def test_single_dose_commands_are_declared():
    from rsp_probe.experiments.base import experiments

    assert {e.name for e in experiments().values() if e.single_dose} == set(SINGLE_DOSE)


@pytest.mark.parametrize("command", SINGLE_DOSE)
def test_single_dose_command_refuses_a_dose_list_before_loading(command, tmp_path, capsys,
                                                               monkeypatch):
    """`--rsp-tokens 4,16` once ran only k=16 while config.json recorded [4, 16]: now one
    line and exit 2 from the CLI, UsageError from the API, before a model is loaded."""
    import rsp_probe
    import rsp_probe.experiments.common as common
    from rsp_probe.cli import main
    from rsp_probe.errors import UsageError
    from rsp_probe.experiments.base import get_experiment

    def no_load(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(common, "_load", no_load)
    monkeypatch.setattr("rsp_probe.models.load_model", no_load)
    expected = f"{command} takes one --rsp-tokens value, got 4,16"
    out = tmp_path / "r"
    assert main([command, "--rsp-tokens", "4,16", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and expected in err, err
    assert not out.exists()
    api = getattr(rsp_probe, command.replace("-", "_"))
    with pytest.raises(UsageError, match=expected):
        api(rsp_tokens=(4, 16), out=str(out), quiet=True)
    experiment = get_experiment(command)  # the experiment's own check, without execute()
    with pytest.raises(UsageError, match=expected):
        experiment.run(experiment.spec(rsp_tokens=(4, 16), out=str(out), quiet=True))
    assert not out.exists()
