"""One module per figure, each drawn from saved run directories alone (no torch).

Every module exposes NAME, NEEDS (the commands whose runs it needs; USES, where present,
names further commands whose runs it also draws), `data(runs) -> DataFrame` (tidy: exactly
what is plotted) and `make(df) -> Figure`. `render.render_all` draws them all.

Importing this package imports nothing but the standard library: FIGURES loads the modules
(numpy, pandas, the analysis code) on first access, and matplotlib is imported only while
a figure is made.
"""

from importlib import import_module

__all__ = ["FIGURES", "FIGURE_NAMES"]


def __getattr__(name: str):
    # the figures are those the registered experiments feed (rsp_probe.experiments.base)
    from rsp_probe.experiments.base import figure_names

    if name == "FIGURE_NAMES":
        return figure_names()
    if name == "FIGURES":
        return tuple(import_module(f"rsp_probe.figures.{n}") for n in figure_names())
    raise AttributeError(f"module 'rsp_probe.figures' has no attribute {name!r}")
