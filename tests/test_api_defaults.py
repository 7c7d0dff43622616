"""Every public experiment function runs with no arguments on the embedded default model,
writes its run under ./runs and draws its own figure into the run directory; `show` prints a
short table by default and every report step with --full.

`entropy` (the README's first command) runs exactly as called with no arguments. The others
keep every default that decides what runs (conditions, k, samples, temperature, Pass@k's k,
batch size) and shrink only the size, 2 prompts of 16 new tokens instead of 8 of 64, on the
default model loaded once: the check below shows their no-argument spec differs in nothing
else. At full size the five runs cost minutes of CPU that prove nothing more."""

from __future__ import annotations

import re

import pytest

import rsp_probe
from rsp_probe.analysis.summaries import describe
from rsp_probe.experiments.base import experiments
from rsp_probe.figures.render import run_figure_path

BUILTIN = ("entropy", "attention", "influence", "branching", "passk")
FULL_SIZE = "entropy"
SMALLER = {"n_prompts": 2, "max_new_tokens": 16}


@pytest.mark.slow
@pytest.mark.parametrize("name", BUILTIN)
def test_api_function_runs_without_arguments(name, tmp_path, monkeypatch, default_model):
    monkeypatch.chdir(tmp_path)
    experiment = getattr(rsp_probe, name)
    if name == FULL_SIZE:
        run, table = experiment()
    else:
        defaults, smaller = experiment.spec().to_dict(), experiment.spec(**SMALLER).to_dict()
        assert {key for key in defaults if defaults[key] != smaller[key]} == set(SMALLER)
        assert {key: smaller[key] for key in SMALLER} == SMALLER
        run, table = experiment(model=default_model, **SMALLER)
    assert run.path.parent.resolve() == (tmp_path / "runs").resolve()
    assert run.command == name and not table.empty
    figure = run_figure_path(run, experiments()[name].figures[0])
    assert figure.exists() and figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    short, full = describe(run), describe(run, full=True)
    if name != "passk":  # passk's tables are by k, not by step
        column = r"step 2\b(?!\.)"  # the step-2 column, not prose such as "median step 2.0"
        assert re.search(column, full) and not re.search(column, short)
