"""The house look shared by every figure: rcParams for a context manager, condition order and
colours, and the drawing idioms (an observed mean with its 95% CI band; a dashed, labelled
theory curve). Nothing here touches global state: `rc()` returns a dict that render.py applies
with `plt.rc_context`, and matplotlib is imported inside the functions.

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


# seaborn 0.13.2's axes_style("whitegrid") and plotting_context("paper"), frozen: importing
# seaborn for them cost every command half a second (tests/test_figures.py keeps them equal
# to seaborn's). Its "image.cmap": "rocket" is left out: that colormap exists only once
# seaborn is imported, and no figure draws with a default colormap.
WHITEGRID = {
    "figure.facecolor": "white", "axes.labelcolor": ".15", "xtick.direction": "out",
    "ytick.direction": "out", "xtick.color": ".15", "ytick.color": ".15",
    "axes.axisbelow": True, "grid.linestyle": "-", "text.color": ".15",
    "font.family": ["sans-serif"],
    "font.sans-serif": ["Arial", "DejaVu Sans", "Liberation Sans", "Bitstream Vera Sans",
                        "sans-serif"],
    "lines.solid_capstyle": "round", "patch.edgecolor": "w", "patch.force_edgecolor": True,
    "xtick.top": False, "ytick.right": False, "axes.grid": True, "axes.facecolor": "white",
    "axes.edgecolor": ".8", "grid.color": ".8", "axes.spines.left": True,
    "axes.spines.bottom": True, "axes.spines.right": True, "axes.spines.top": True,
    "xtick.bottom": False, "ytick.left": False,
}
PAPER = {  # the "notebook" sizes x 0.8, as seaborn scales them
    "axes.linewidth": 1.0, "grid.linewidth": 0.8, "lines.linewidth": 1.5 * 0.8,
    "lines.markersize": 6 * 0.8, "patch.linewidth": 0.8, "xtick.major.width": 1.25 * 0.8,
    "ytick.major.width": 1.25 * 0.8, "xtick.minor.width": 0.8, "ytick.minor.width": 0.8,
    "xtick.major.size": 6 * 0.8, "ytick.major.size": 6 * 0.8, "xtick.minor.size": 4 * 0.8,
    "ytick.minor.size": 4 * 0.8, "font.size": 12 * 0.8, "axes.labelsize": 12 * 0.8,
    "axes.titlesize": 12 * 0.8, "xtick.labelsize": 11 * 0.8, "ytick.labelsize": 11 * 0.8,
    "legend.fontsize": 11 * 0.8, "legend.title_fontsize": 12 * 0.8,
}
COLORBLIND = ("#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#fbafe4",
              "#949494", "#ece133", "#56b4e9")  # seaborn's "colorblind" palette


def rc() -> dict:
    """rcParams for `plt.rc_context`: seaborn's whitegrid/paper look, fixed fonts and salts."""
    return {**WHITEGRID, **PAPER,
            "font.family": "DejaVu Sans", "svg.hashsalt": "rsp-probe", "pdf.fonttype": 3,
            "figure.dpi": 100, "savefig.dpi": 150, "axes.titlesize": 9, "axes.labelsize": 8,
            "legend.fontsize": 7, "legend.title_fontsize": 7, "xtick.labelsize": 7,
            "ytick.labelsize": 7}


def palette(n: int) -> list[tuple[float, float, float]]:
    """n distinct colours as seaborn's color_palette gives them: "colorblind" up to 10,
    else viridis sampled at n inner points of [0, 1]."""
    import matplotlib as mpl

    n = max(n, 1)
    if n <= len(COLORBLIND):
        return [mpl.colors.to_rgb(color) for color in COLORBLIND[:n]]
    inner = np.linspace(0, 1, n + 2)[1:-1]
    return [tuple(color) for color in mpl.colormaps["viridis"](inner)[:, :3]]


def k_colors(ks) -> dict[int, tuple]:
    """One colour per k, the same in every figure: k=0 (no RSP) black, then the palette."""
    ks = sorted({int(k) for k in ks} - {0})
    return {0: (0.0, 0.0, 0.0), **dict(zip(ks, palette(len(ks))))}


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
        fill = ax.fill_between(rows[x], rows["ci_low"], rows["ci_high"], color=color,
                               alpha=CI_ALPHA, linewidth=0)
        fill.set_gid(f"band:{gid}")
    return line


MIN_CI_PROMPTS = 5  # fewer prompts: an illustration, drawn without CIs


def as_illustration(fig, n_prompts: int) -> None:
    """A figure from fewer than MIN_CI_PROMPTS prompts: a bootstrap over so few units means
    nothing, so its CI bands and error bars are removed and the title says what it is."""
    from matplotlib.container import ErrorbarContainer

    for ax in fig.axes:
        for collection in list(ax.collections):
            if (collection.get_gid() or "").startswith("band:"):
                collection.remove()
        # error bars (of points and of bars alike): their caps and lines go, the data stay
        parts = {id(part): part for container in ax.containers
                 if isinstance(container, ErrorbarContainer)
                 for part in (*container[1], *container[2])}
        for part in parts.values():
            part.remove()
    fig.suptitle(f"illustration, n = {n_prompts} prompts: too few for a CI", fontsize=9)


RUNNING_SHARE = 0.5  # a step is drawn while at least this share of prompts still runs


def running_steps(frame: pd.DataFrame, keys=("run", "condition"),
                  count: str = "n_prompts") -> pd.DataFrame:
    """The rows of each curve (`keys`) whose step still has at least half of the curve's
    prompts running: beyond that a mean is the noise of the few long trajectories."""
    if frame.empty:
        return frame
    keys = [key for key in keys if key in frame]
    most = frame.groupby(keys, dropna=False)[count].transform("max") if keys else \
        frame[count].max()
    return frame[frame[count] >= RUNNING_SHARE * most].reset_index(drop=True)


def prompt_count(frame: pd.DataFrame, count: str = "n_prompts") -> str:
    """'n = 24 prompts' for a caption: the prompts a curve starts from (fewer run at late
    steps, which is why those are cut at half)."""
    values = pd.to_numeric(frame[count], errors="coerce").dropna()
    if values.empty:
        return "no prompts"
    return f"n = {int(values.max())} prompts"


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
