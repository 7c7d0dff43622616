"""The Python API of each registered experiment, generated from the CLI's option tables.

`rsp_probe.passk` is a function whose signature and docstring list the same options, defaults
and help as `rsp-probe passk --help` (config.py's pieces, the experiment's own options and
its `defaults`): one source, so the two cannot drift. Calling it resolves the options into a
Spec (checked before any model loads) and runs the experiment. No heavy imports.
"""

from __future__ import annotations

import dataclasses
import inspect
import textwrap
import warnings
from collections.abc import Callable
from typing import Any

from rsp_probe.config import EXPERIMENT_PIECES, ModelConfig

MODEL_DOC = ("checkpoint directory, Hub id in the local Hugging Face cache, None (the "
             "embedded default model), or a model from rsp_probe.load_model(), reused without "
             "reloading")


def option_fields(experiment) -> list[tuple[dataclasses.Field, Any]]:
    """(field, default) of every option the experiment takes, in --help order; the model is
    the functions' first parameter instead."""
    pieces = [*EXPERIMENT_PIECES, experiment.options]
    return [(field, experiment.defaults.get(field.name, field.default))
            for piece in pieces for field in dataclasses.fields(piece)
            if not (piece is ModelConfig and field.name == "model")]


def renamed_options(experiment) -> dict[str, str]:
    """{old keyword: its current name} for the options renamed since they were introduced."""
    return {old: field.name for field, _ in option_fields(experiment)
            for old in field.metadata.get("renamed_from", ())}


def accept_renamed(experiment, options: dict) -> dict:
    """`options` with old keyword names replaced by the current ones, each with a note."""
    for old, new in renamed_options(experiment).items():
        if old in options:
            warnings.warn(f"rsp_probe.{python_name(experiment.name)}({old}=...) is deprecated "
                          f"and will be removed; use {new}=", DeprecationWarning, stacklevel=4)
            options[new] = options.pop(old)
    return options


def python_name(name: str) -> str:
    return name.replace("-", "_")


def signature(experiment) -> inspect.Signature:
    keyword = inspect.Parameter.KEYWORD_ONLY
    parameters = [inspect.Parameter("model", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                    default=None, annotation="str | Backend | None")]
    parameters += [inspect.Parameter(field.name, keyword, default=default, annotation=field.type)
                   for field, default in option_fields(experiment)]
    return inspect.Signature(parameters, return_annotation="tuple[Run, pd.DataFrame]")


def docstring(experiment) -> str:
    from rsp_probe.cli_options import format_default, option_help

    intro = (f"The Python form of `rsp-probe {experiment.name}`: the same options (dashes as "
             "underscores, lists as tuples), the same defaults. Writes a run directory and "
             "returns (Run, summary DataFrame).")
    lines = [f"{experiment.help[0].upper()}{experiment.help[1:]}.", "", *textwrap.wrap(intro, 88),
             "", "Parameters", "----------", "model : str | Backend | None",
             *textwrap.wrap(MODEL_DOC + ".", 88, initial_indent="    ",
                            subsequent_indent="    ")]
    for field, default in option_fields(experiment):
        shown = format_default(default) if not isinstance(default, bool) else str(default)
        lines.append(f"{field.name} : {field.type}, default {shown or 'None'}")
        lines += textwrap.wrap(option_help(field), 88, initial_indent="    ",
                               subsequent_indent="    ")
    return "\n".join(lines)


def api_function(experiment) -> Callable:
    """`rsp_probe.<name>(model=None, *, option=default, ...) -> (Run, DataFrame)`."""

    def run(model=None, **options):
        return experiment(model, **accept_renamed(experiment, options))

    run.__name__ = run.__qualname__ = python_name(experiment.name)
    run.__module__ = "rsp_probe"
    run.__signature__ = signature(experiment)
    run.__doc__ = docstring(experiment)
    run.experiment = experiment
    run.spec = experiment.spec  # the resolved options, without running anything
    return run
