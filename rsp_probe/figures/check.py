"""What makes a figure unreadable, found on the laid-out Figure itself (issue 25's rules).

    from rsp_probe.figures.check import figure_problems
    problems = figure_problems(fig)   # [] for a readable figure, else one line per problem

The rules, each a property of the drawn artists, not of the data:

- text (titles, labels, tick labels, legend entries, annotations) stays inside the canvas and
  never overlaps other text;
- at most MAX_PANELS panels (insets and colour bars are not panels);
- a legend has at most MAX_LEGEND_ENTRIES entries;
- every visible axes shows data (a line, a collection, a bar or an image);
- an axis whose label names a fraction (FRACTION_WORD, e.g. "mass (fraction)") keeps its
  limits within [0, 1] (a margin of FRACTION_MARGIN for the end markers).

render.py lays a figure out before saving it; `figure_problems` draws it once (Agg) in that
layout and reads the window extents of the text, so what it checks is what the PNG shows.
"""

from __future__ import annotations

from itertools import combinations

MAX_LEGEND_ENTRIES = 6
MAX_PANELS = 4
FRACTION_WORD = "fraction"
FRACTION_MARGIN = 0.05  # an axis from -0.05 to 1.05 still reads as [0, 1]
OVERLAP_PX = 1.0  # text boxes may touch; they overlap when they share more than this (pixels)
EDGE_PX = 1.0  # and leave the canvas when they cross its edge by more than this


def figure_problems(fig) -> list[str]:
    """Every rule the laid-out `fig` breaks, one line each (empty when it breaks none)."""
    if not hasattr(fig.canvas, "get_renderer"):  # closed in pyplot (render.draw): draw on Agg
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = _visible_texts(fig, renderer)
    return [*_too_many_panels(fig), *_outside(fig, texts), *_overlapping(texts),
            *_long_legends(fig), *_empty_axes(fig), *_fraction_axes(fig)]


def _too_many_panels(fig) -> list[str]:
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    if len(panels) > MAX_PANELS:
        return [f"{len(panels)} panels (at most {MAX_PANELS}): one question per figure"]
    return []


def _visible_texts(fig, renderer) -> list[tuple[str, object]]:
    """(text, window extent) of every drawn, non-empty text of the figure."""
    found = []
    for artist in _texts(fig):
        if artist.get_visible() and artist.get_text().strip():
            found.append((artist.get_text(), artist.get_window_extent(renderer)))
    return found


def _texts(fig) -> list:
    texts = list(fig.texts)
    for legend in fig.legends:
        texts += [*legend.get_texts(), legend.get_title()]
    for ax in _all_axes(fig):
        texts += [ax.title, ax._left_title, ax._right_title, *ax.texts]
        for axis in (ax.xaxis, ax.yaxis):
            texts += [axis.label, axis.get_offset_text()]
            # only the ticks drawn in the current view (a locator may place more)
            for tick in axis._update_ticks():
                texts += [tick.label1, tick.label2]
        legend = ax.get_legend()
        if legend is not None and legend.get_visible():
            texts += [*legend.get_texts(), legend.get_title()]
    return texts


def _outside(fig, texts) -> list[str]:
    width, height = fig.canvas.get_width_height()
    problems = []
    for text, box in texts:
        if (box.x0 < -EDGE_PX or box.y0 < -EDGE_PX or box.x1 > width + EDGE_PX
                or box.y1 > height + EDGE_PX):
            problems.append(f"text leaves the figure: {_short(text)}")
    return problems


def _overlapping(texts) -> list[str]:
    problems = []
    for (a, box_a), (b, box_b) in combinations(texts, 2):
        dx = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
        dy = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
        if dx > OVERLAP_PX and dy > OVERLAP_PX:
            problems.append(f"text overlaps: {_short(a)} / {_short(b)}")
    return problems


def _all_axes(fig) -> list:
    """The visible axes of the figure, insets included."""
    found, todo = [], list(fig.axes)
    while todo:
        ax = todo.pop(0)
        if ax.get_visible() and ax not in found:
            found.append(ax)
            todo += list(ax.child_axes)
    return found


def _long_legends(fig) -> list[str]:
    legends = [*fig.legends, *(ax.get_legend() for ax in _all_axes(fig))]
    return [f"legend with {len(legend.get_texts())} entries (at most {MAX_LEGEND_ENTRIES})"
            for legend in legends
            if legend is not None and len(legend.get_texts()) > MAX_LEGEND_ENTRIES]


def _has_data(ax) -> bool:
    import numpy as np

    for line in ax.get_lines():
        if np.isfinite(np.asarray(line.get_ydata(), dtype=float)).any():
            return True
    from matplotlib.collections import PathCollection

    for collection in ax.collections:  # a band or a scatter of NaN draws nothing
        if isinstance(collection, PathCollection):  # scatter: the points are the offsets
            points = [np.asarray(collection.get_offsets(), dtype=float)]
        else:
            points = [np.asarray(p.vertices, dtype=float) for p in collection.get_paths()]
        if any(p.size and np.isfinite(p).all(axis=-1).any() for p in points):
            return True
    return bool(ax.patches or ax.images)


def _empty_axes(fig) -> list[str]:
    return [f"axes without data: {_name(ax)}" for ax in _all_axes(fig)
            if ax.get_label() != "<colorbar>" and not _has_data(ax)]


def _fraction_axes(fig) -> list[str]:
    problems = []
    for ax in _all_axes(fig):
        for which, label, limits in (("x", ax.get_xlabel(), ax.get_xlim()),
                                     ("y", ax.get_ylabel(), ax.get_ylim())):
            if FRACTION_WORD not in label.lower():
                continue
            low, high = sorted(limits)
            if low < -FRACTION_MARGIN or high > 1 + FRACTION_MARGIN:
                problems.append(f"fraction axis {which} of {_name(ax)} runs from {low:.3g} "
                                f"to {high:.3g}")
    return problems


def _name(ax) -> str:
    return repr(ax.get_title() or ax.get_ylabel() or ax.get_label() or "untitled")


def _short(text: str) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= 40 else text[:37] + "...")
