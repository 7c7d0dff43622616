"""One module per figure, each drawn from saved run directories alone (no torch).

Every module exposes NAME, NEEDS (the commands whose runs it needs; USES, where present,
names further commands whose runs it also draws), `data(runs) -> DataFrame` (tidy: exactly
what is plotted) and `make(df) -> Figure`. `render.render_all` draws them all.

The figures are those the registered experiments declare (rsp_probe.registry), as module
names: a module of this package by its bare name ("entropy"), any other module by its import
path (a plugin brings its own figure).
Importing this package imports nothing but the standard library: the modules (numpy, pandas,
the analysis code) load on first use, and matplotlib only while a figure is made.
"""

from importlib import import_module
from importlib.util import find_spec

__all__ = ["FIGURES", "FIGURE_NAMES", "figure_module", "figure_modules", "figure_names"]


def figure_module(ref: str):
    """The figure module a declaration names: "entropy" (this package's) or a plugin's
    "my_plugin.figure" or "my_figure"."""
    own = f"{__name__}.{ref}"
    return import_module(own if "." not in ref and find_spec(own) is not None else ref)


def figure_modules() -> tuple:
    """Every declared figure module: each registered experiment's own figure in registry
    order, then the figures that combine runs."""
    from rsp_probe.registry import EXPERIMENTS

    declared = [e.figures for e in EXPERIMENTS.entries().values()]
    refs = [f[0] for f in declared if f] + [ref for f in declared for ref in f[1:]]
    return tuple(figure_module(ref) for ref in dict.fromkeys(refs))


def figure_names() -> tuple[str, ...]:
    return tuple(module.NAME for module in figure_modules())


def __getattr__(name: str):
    if name == "FIGURE_NAMES":
        return figure_names()
    if name == "FIGURES":
        return figure_modules()
    raise AttributeError(f"module 'rsp_probe.figures' has no attribute {name!r}")
