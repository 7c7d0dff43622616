"""What a new user meets first (issue 28): one name per option, defaults that fit the other
options, help a person reads, --version, progress without a terminal, an API with the CLI's
options, tables sorted by number."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import io
import logging
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest

import rsp_probe
from rsp_probe.api import option_fields
from rsp_probe.cli import build_parser, main
from rsp_probe.cli_options import in_typed_words, option_help
from rsp_probe.errors import UsageError
from rsp_probe.experiments.base import experiments
from rsp_probe.experiments.common import build_spec
from rsp_probe.progress import INTERVAL_ENV, Progress

ROOT = Path(__file__).resolve().parents[1]
TUPLE_REPR = re.compile(r"\(\(|\(\)|\('|\(None\)|\(True\)|\(False\)|\[\]")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_no_help_shows_a_python_repr():
    parser = build_parser()
    commands = _subparsers(parser)
    assert {"passk", "knockout", "tune-prompt", "show", "train-toy"} <= set(commands)
    for name, command in {"rsp-probe": parser, **commands}.items():
        text = command.format_help()
        assert not TUPLE_REPR.search(text), (name, TUPLE_REPR.search(text).group())
    passk = " ".join(commands["passk"].format_help().split())
    assert "(default: 1,2,4,8)" in passk and "(default: temp,rsp+temp,greedy+rsp,greedy)" in passk
    assert "(default: 8)" in passk  # passk's own default for --samples, not the shared 4


def test_top_level_help_is_complete_and_version_works(capsys):
    description = build_parser().description
    assert description.rstrip().endswith(".") and "run directory" in description
    for name, command in _subparsers(build_parser()).items():  # complete sentences
        assert command.description and command.description.rstrip().endswith("."), name
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0 and capsys.readouterr().out.strip() == (
        f"rsp-probe {rsp_probe.__version__}")


def test_one_flag_style_plain_flags_only():
    for name, command in _subparsers(build_parser()).items():
        flags = [s for a in command._actions for s in a.option_strings]
        assert not [f for f in flags if f.startswith("--no-")], name  # no --x | --no-x pairs


def test_the_version_has_one_source():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "rsp_probe._version.__version__"}
    assert (ROOT / "rsp_probe" / "py.typed").exists()
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["rsp_probe"]


# -- one name per concept ------------------------------------------------------------------------

def test_pass_k_is_one_name_and_the_old_flag_still_works(capsys):
    parser = build_parser()
    for command in ("passk", "knockout", "dose", "compare-prompts"):
        assert parser.parse_args([command, "--pass-k", "1,2"]).pass_k == (1, 2)
        args = parser.parse_args([command, "--k", "1,2"])
        assert args.pass_k == (1, 2)
        note = capsys.readouterr().err.strip().splitlines()
        assert len(note) == 1 and "--k is deprecated" in note[0] and "--pass-k" in note[0]
    tune = parser.parse_args(["tune-prompt", "--k", "8"])
    assert tune.rsp_tokens == 8 and "use --rsp-tokens" in capsys.readouterr().err
    assert parser.parse_args(["tune-prompt", "--rsp-tokens", "8"]).rsp_tokens == 8


def test_messages_name_the_flag_the_user_typed():
    args = build_parser().parse_args(["passk", "--n", "0"])
    assert in_typed_words("--samples must be >= 1, got 0", args) == "--n must be >= 1, got 0"
    assert in_typed_words("--samples-x and --samples", args) == "--samples-x and --n"
    args = build_parser().parse_args(["passk", "--samples", "0"])
    assert in_typed_words("--samples must be >= 1", args) == "--samples must be >= 1"


def test_a_bad_value_is_named_as_typed_in_one_line(capsys):
    assert main(["passk", "--n", "0", "--out", "unused"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "rsp-probe passk: error: --n must be >= 1, got 0"


# -- defaults that adapt -------------------------------------------------------------------------

def test_the_pass_k_list_is_clipped_to_the_samples_with_one_note(caplog):
    with caplog.at_level(logging.INFO, logger="rsp_probe"):
        spec = build_spec("passk", extra={"pass_k": (1, 2, 4, 8)}, samples=2)
    assert spec.option("pass_k") == (1, 2)
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 1 and "k = 4, 8 left out" in notes[0] and "k = 1, 2" in notes[0]
    caplog.clear()
    assert build_spec("passk", extra={"pass_k": (1, 2)}, samples=2).option("pass_k") == (1, 2)
    assert not caplog.records  # nothing left out, nothing said
    with pytest.raises(UsageError, match="--pass-k values must be >= 1"):
        build_spec("passk", extra={"pass_k": (0, 1)}, samples=2)


@pytest.mark.parametrize("argv", [["passk", "--n", "2"], ["knockout", "--samples", "2"],
                                  ["influence", "--samples", "2"]])
def test_small_sample_counts_run_with_the_default_pass_k(argv, tiny_qwen2, tmp_path, capsys,
                                                         monkeypatch):
    closed = []  # each Progress's counts when the run closes it
    original = Progress.close
    monkeypatch.setattr(Progress, "close", lambda self: (closed.append(
        (self.done, self.total_trajectories, self.tokens, self.total_tokens)), original(self)))
    small = ["--n-prompts", "2", "--max-new-tokens", "3", "--model", str(tiny_qwen2)]
    assert main([*argv, *small, "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    passk_note = "left out (more than the 2 samples per prompt)"
    assert err.count(passk_note) == (0 if argv[0] == "influence" else 1)  # it has no Pass@k
    assert (tmp_path / "r" / "DONE").exists()
    # one Progress for the whole run, even knockout's many phases, ending at its totals
    assert len(closed) == 1
    done, trajectories, tokens, total_tokens = closed[0]
    assert done == trajectories > 0 and tokens == total_tokens > 0


# -- the API has the CLI's options ---------------------------------------------------------------

@pytest.mark.parametrize("name", list(experiments()))
def test_api_signature_lists_exactly_the_cli_options(name):
    function = getattr(rsp_probe, name.replace("-", "_"))
    parameters = inspect.signature(function).parameters
    command = _subparsers(build_parser())[name]
    dests = {a.dest for a in command._actions if a.option_strings and a.dest != "help"}
    assert set(parameters) == dests  # --model is the first parameter, `model`
    experiment = experiments()[name]
    for field, default in option_fields(experiment):
        assert parameters[field.name].default == default
        assert parameters[field.name].kind is inspect.Parameter.KEYWORD_ONLY
        first_words = " ".join(option_help(field).split()[:4])
        assert first_words in " ".join(function.__doc__.split()), (name, field.name)


def test_passk_signature_and_the_old_keyword():
    parameters = inspect.signature(rsp_probe.passk).parameters
    assert parameters["pass_k"].default == (1, 2, 4, 8) and parameters["samples"].default == 8
    assert "k" not in parameters
    with pytest.warns(DeprecationWarning, match=r"k=\.\.\.\) is deprecated.*pass_k="):
        with pytest.raises(UsageError, match="--pass-k values must be >= 1"):
            rsp_probe.passk(k=(0,), quiet=True)  # refused before any model is loaded


def test_load_model_defaults_to_the_fast_backend():
    assert inspect.signature(rsp_probe.load_model).parameters["backend"].default == "auto"
    assert rsp_probe.load_model().name == "hf"  # the embedded default model


# -- progress ------------------------------------------------------------------------------------

def test_progress_lines_say_trajectories_rate_and_eta():
    stream = io.StringIO()
    progress = Progress("passk", stream=stream, interval=0.0, terminal=False)
    progress.plan(4, 10)
    progress.expect(2, 10)  # a first phase of 2 trajectories; the plan says 4 in all
    progress.advance(2)
    progress.advance(2, finished=2, unused=16)  # both ended after 2 of 10 tokens
    line = stream.getvalue().strip().splitlines()[-1]
    assert re.fullmatch(r"passk: 2/4 trajectories, \d+ tok/s, \d+s elapsed, ETA \d+s", line)
    assert progress.total_tokens == 24  # 40 at most, less the 16 the ended rows left unused
    assert progress.remaining_tokens() == 4  # 2 more rows at the finished rows' 2 tokens
    progress.expect(2, 10)
    progress.advance(4, finished=2, unused=16)
    progress.close()
    assert stream.getvalue().strip().splitlines()[-1].startswith("passk: 4/4 trajectories")


def test_the_terminal_bar_ends_at_its_total():
    stream = io.StringIO()
    progress = Progress("entropy", stream=stream, terminal=True)
    progress.expect(3, 8)
    progress.advance(3, finished=1, unused=7)
    progress.advance(2, finished=2, unused=12)
    bar = progress.bar
    assert bar.n == bar.total == 5 == progress.tokens
    progress.close()


def test_a_run_with_stderr_in_a_file_prints_progress_lines(tiny_qwen2, tmp_path):
    log = tmp_path / "stderr.log"
    env = {**os.environ, INTERVAL_ENV: "0", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    with open(log, "w") as stderr:
        done = subprocess.run(
            [sys.executable, "-m", "rsp_probe.cli", "entropy", "--model", str(tiny_qwen2),
             "--n-prompts", "2", "--samples", "2", "--max-new-tokens", "4", "--batch-size", "2",
             "--out", str(tmp_path / "r")], stdout=subprocess.DEVNULL, stderr=stderr,
            env=env, cwd=tmp_path, timeout=300, check=False)
    text = log.read_text()
    assert done.returncode == 0, text
    lines = [line for line in text.splitlines() if line.startswith("entropy: ")]
    assert len(lines) >= 2, text  # one per batch at interval 0, and the last
    assert re.search(r"\d+/8 trajectories, \d+ tok/s", lines[0]) and "ETA" in text
    assert lines[-1].startswith("entropy: 8/8 trajectories")


# -- honest tables -------------------------------------------------------------------------------

def test_tables_sort_k_as_numbers_and_few_prompts_get_a_note():
    from rsp_probe.analysis.stats import wide_table
    from rsp_probe.analysis.summaries import few_prompts_note

    summary = pd.DataFrame({"condition": ["k16", "k4", "k0"], "step": [1, 1, 1],
                            "mean": [0.1, 0.2, 0.3], "ci_low": [0.0] * 3, "ci_high": [1.0] * 3})
    rows = [line.split()[0] for line in wide_table(summary).splitlines()[2:]]
    assert rows == ["k0", "k4", "k16"]
    assert "illustrative" in few_prompts_note(9) and few_prompts_note(10) is None


def test_every_option_table_field_has_help():
    from rsp_probe.config import EXPERIMENT_PIECES
    from rsp_probe.soft_prompts.options import TuneOptions

    pieces = [*EXPERIMENT_PIECES, TuneOptions, *(e.options for e in experiments().values())]
    for piece in pieces:
        for field in dataclasses.fields(piece):
            assert option_help(field).strip(), (piece.__name__, field.name)


def test_the_sampler_counts_every_token_and_the_batches_a_resume_skips(loaded_qwen2):
    """Progress from the sampler itself: generated tokens plus the unused budgets of ended
    and skipped rows add up to the budget, so the bar's total meets its count."""
    from rsp_probe.rsp import draw_rsp, fit_law, place_rsp
    from rsp_probe.sampler import Job, generate
    from rsp_probe.tasks.prompts import encode_plain

    law = fit_law(loaded_qwen2.embedding_table)
    ids, positions = place_rsp(encode_plain(loaded_qwen2.tokenizer, "What is 2 + 3?"), 2,
                               "suffix")
    jobs = [Job(f"j{s}", ids, positions, draw_rsp(law, 2, seed=s), 1.0, 1.0, seed=s)
            for s in range(5)]
    progress = Progress("test", stream=io.StringIO(), terminal=True)
    generated = []
    generate(loaded_qwen2, jobs, 6, batch_size=2, progress=progress, skip_batches={1},
             on_batch=lambda number, indices, batch: generated.extend(batch))
    assert progress.done == progress.total_trajectories == 5
    assert progress.tokens == sum(len(t.generated_token_ids) for t in generated)
    assert progress.bar.n == progress.bar.total == progress.total_tokens == progress.tokens
    progress.close()
