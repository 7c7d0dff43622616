"""Every public experiment function runs with no arguments on the embedded default model,
writes its run under ./runs and draws its own figure into the run directory; `show` prints a
short table by default and every report step with --full."""

from __future__ import annotations

import re

import pytest

import rsp_probe
from rsp_probe.analysis.summaries import describe
from rsp_probe.experiments.base import experiments
from rsp_probe.figures.render import run_figure_path

BUILTIN = ("entropy", "attention", "influence", "branching", "passk")


@pytest.mark.slow
@pytest.mark.parametrize("name", BUILTIN)
def test_api_function_runs_without_arguments(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run, table = getattr(rsp_probe, name)()
    assert run.path.parent.resolve() == (tmp_path / "runs").resolve()
    assert run.command == name and not table.empty
    figure = run_figure_path(run, experiments()[name].figures[0])
    assert figure.exists() and figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    short, full = describe(run), describe(run, full=True)
    if name != "passk":  # passk's tables are by k, not by step
        column = r"step 2\b(?!\.)"  # the step-2 column, not prose such as "median step 2.0"
        assert re.search(column, full) and not re.search(column, short)
