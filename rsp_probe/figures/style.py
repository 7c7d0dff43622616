"""The house look shared by every figure: rcParams for a context manager, condition order and
colours, and the drawing idioms (an observed mean with its 95% CI band; a dashed, labelled
theory curve). Nothing here touches global state: `rc()` returns a dict that render.py applies
with `plt.rc_context`, and matplotlib/seaborn are imported inside the functions.

Every drawn line carries a gid ("observed:<name>", "theory:<name>", "fit:<name>") so tests
and readers can count what a panel shows without guessing from colours.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

SIG_DIGITS = 8  # plotted data are rounded to this many significant digits (stable CSV bytes)
CI_ALPHA = 0.2
THEORY_COLOR = "0.25"
ENVELOPE_COLOR = "0.55"


def rc() -> dict:
    """rcParams for `plt.rc_context`: seaborn's whitegrid/paper look, fixed fonts and salts."""
    import seaborn as sns

    return {**dict(sns.axes_style("whitegrid")), **dict(sns.plotting_context("paper")),
            "font.family": "DejaVu Sans", "svg.hashsalt": "rsp-probe", "pdf.fonttype": 3,
            "figure.dpi": 100, "savefig.dpi": 150, "axes.titlesize": 9, "axes.labelsize": 8,
            "legend.fontsize": 7, "legend.title_fontsize": 7, "xtick.labelsize": 7,
            "ytick.labelsize": 7}


def palette(n: int) -> list:
    import seaborn as sns

    n = max(n, 1)
    return sns.color_palette("colorblind", n) if n <= 10 else sns.color_palette("viridis", n)


def round_sig(frame: pd.DataFrame, digits: int = SIG_DIGITS) -> pd.DataFrame:
    """Float columns rounded to `digits` significant digits: what is plotted is what is saved."""
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_float_dtype(out[column]):
            values = out[column].to_numpy(dtype=np.float64)
            finite = np.isfinite(values) & (values != 0)
            scale = np.zeros_like(values)
            scale[finite] = digits - 1 - np.floor(np.log10(np.abs(values[finite])))
            rounded = values.copy()
            for decimals in np.unique(scale[finite]):
                mask = finite & (scale == decimals)
                rounded[mask] = np.round(values[mask], int(decimals))
            out[column] = rounded
    return out


def condition_order(frame: pd.DataFrame, key: str = "condition") -> list[str]:
    """Conditions by (k, name) when a k column exists, else in order of appearance."""
    if "k" in frame:
        firsts = frame.groupby(key, sort=False)["k"].first()
        return sorted(firsts.index, key=lambda c: (firsts[c], str(c)))
    return list(dict.fromkeys(frame[key]))


def sort_conditions(frame: pd.DataFrame, x: str = "x") -> pd.DataFrame:
    """Rows by run, then condition (k order), then x: a stable, readable CSV."""
    rank = {c: i for i, c in enumerate(condition_order(frame))}
    order = frame.assign(_rank=frame["condition"].map(rank))
    order = order.sort_values(["run", "_rank", x], kind="stable")
    return order.drop(columns="_rank").reset_index(drop=True)


def with_band(ax, rows: pd.DataFrame, color, label: str | None, gid: str, x: str = "x",
              marker: str | None = None, band: bool = True):
    """The observed mean line and its CI band (columns y, ci_low, ci_high); band=False only
    where many curves share a panel and their CIs are in the saved data instead."""
    rows = rows.sort_values(x)
    (line,) = ax.plot(rows[x], rows["y"], color=color, label=label, marker=marker,
                      markersize=3, linewidth=1.4 if band else 0.9)
    line.set_gid(f"observed:{gid}")
    if band:
        ax.fill_between(rows[x], rows["ci_low"], rows["ci_high"], color=color,
                        alpha=CI_ALPHA, linewidth=0)
    return line


def theory_line(ax, x, y, label: str | None, gid: str, color=THEORY_COLOR, **kwargs):
    """A dashed theory (or fitted-law) curve; `label` should say "theory" or "fit"."""
    kwargs.setdefault("linewidth", 1.1)
    (line,) = ax.plot(x, y, linestyle="--", color=color, label=label, **kwargs)
    line.set_gid(f"theory:{gid}")
    return line


def log_axis(ax, which: str = "x") -> None:
    """Log scale with plain-number ticks at 1, 2, 5, 10, 20, 50, ... (steps read as steps)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def legend_below(ax, ncol: int = 2, **kwargs) -> None:
    """The legend under the axes, so it never hides data."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.2),
                  ncol=ncol, frameon=False, **kwargs)


def note(ax, text: str) -> None:
    """A boxed remark inside a panel (e.g. why a prediction is missing)."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=7,
            color="0.3", bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.7"})


def grid(n_panels: int, max_cols: int = 3) -> tuple[int, int]:
    cols = min(n_panels, max_cols)
    return math.ceil(n_panels / cols), cols


def run_prefix(frame: pd.DataFrame) -> dict[str, str]:
    """'' for a single run, else '<run id>: ' per run id, to keep labels unambiguous."""
    ids = list(dict.fromkeys(frame["run"]))
    return {i: "" if len(ids) == 1 else f"{i}: " for i in ids}
