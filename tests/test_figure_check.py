"""The readability check of rsp_probe/figures/check.py: it rejects small, deliberately
cluttered figures (one fault each), and every figure drawn from the committed runs
(figures/runs, the README's evidence, and tests/data/runs) passes it, with its caption."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN_FOLDERS = {"committed": ROOT / "figures" / "runs", "test": ROOT / "tests" / "data" / "runs"}


@pytest.fixture(autouse=True)
def _agg():
    import matplotlib

    matplotlib.use("Agg")


def _laid_out(fig):
    from rsp_probe.figures.render import laid_out

    return laid_out(fig)


def _problems(fig):
    import matplotlib.pyplot as plt

    from rsp_probe.figures.check import figure_problems

    try:
        return figure_problems(fig)
    finally:
        plt.close(fig)


def _clean():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([1, 2, 3], [0.1, 0.5, 0.9], label="k=4")
    ax.set_ylim(0, 1)
    ax.set_xlabel("decoding step t")
    ax.set_ylabel("mass (fraction)")
    ax.legend()
    return _laid_out(fig)


def _text_off_canvas():
    fig = _clean()
    fig.axes[0].set_ylabel("a y label far too long for this small figure to hold " * 3)
    return fig


def _overlapping_text():
    fig = _clean()
    fig.axes[0].text(2, 0.5, "first remark")
    fig.axes[0].text(2, 0.5, "second remark")
    return fig


def _crowded_ticks():
    fig = _clean()
    ax = fig.axes[0]
    ax.set_xticks(np.linspace(1, 3, 40), [f"label {i}" for i in range(40)])
    return fig


def _long_legend():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for n in range(7):
        ax.plot([1, 2], [n, n + 1], label=f"k=4 (n={24 - n} prompts)")
    ax.legend(fontsize=5)
    return _laid_out(fig)


def _empty_panel():
    import matplotlib.pyplot as plt

    fig, (ax, empty) = plt.subplots(1, 2, figsize=(6, 3))
    ax.plot([1, 2], [1, 2])
    empty.set_title("nothing here")
    return _laid_out(fig)


def _nan_band_only():
    import matplotlib.pyplot as plt

    fig, (ax, empty) = plt.subplots(1, 2, figsize=(6, 3))
    ax.plot([1, 2], [1, 2])
    empty.plot([1, 2], [np.nan, np.nan])
    empty.fill_between([1, 2], [np.nan, np.nan], [np.nan, np.nan])
    empty.set_ylabel("a measure the run lacks")
    return _laid_out(fig)


def _fraction_beyond_one():
    fig = _clean()
    fig.axes[0].set_ylim(0, 1.2)
    return fig


def _too_many_panels():
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 5, figsize=(10, 2.5))
    for ax in axes:
        ax.plot([1, 2], [1, 2])
    return _laid_out(fig)


CLUTTERED = {
    "text leaves the figure": _text_off_canvas,
    "text overlaps": _overlapping_text,
    "text overlaps:": _crowded_ticks,
    "legend with 7 entries": _long_legend,
    "axes without data": _empty_panel,
    "axes without data:": _nan_band_only,
    "fraction axis y": _fraction_beyond_one,
    "5 panels": _too_many_panels,
}


def test_a_clean_figure_passes():
    assert _problems(_clean()) == []


@pytest.mark.parametrize("expected", list(CLUTTERED))
def test_each_cluttered_fixture_is_rejected_for_its_fault(expected):
    problems = _problems(CLUTTERED[expected]())
    assert any(problem.startswith(expected) for problem in problems), problems


def test_a_hidden_panel_and_an_inset_are_no_panels():
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(6, 5))
    for ax in axes.flat[:3]:
        ax.plot([1, 2], [1, 2])
    axes.flat[3].set_visible(False)
    inset = axes.flat[0].inset_axes([0.6, 0.6, 0.3, 0.3])
    inset.plot([1, 2], [2, 1])
    assert _problems(_laid_out(fig)) == []


def _figures_of(folder: Path):
    """(name, frame, laid-out Figure) of every figure the runs in `folder` can draw."""
    import matplotlib.pyplot as plt

    from rsp_probe.figures import FIGURES, style
    from rsp_probe.figures.render import inputs_for, runs_by_command
    from rsp_probe.runs import find_runs

    by_command = runs_by_command(find_runs([folder]))
    for module in FIGURES:
        inputs = inputs_for(module, by_command)
        if isinstance(inputs, str):
            continue
        frame = style.round_sig(module.data(inputs))
        with plt.rc_context(style.rc()):
            yield module, frame, _laid_out(module.make(frame))


@pytest.mark.parametrize("folder", list(RUN_FOLDERS))
def test_every_figure_of_the_committed_runs_passes_the_check(folder):
    from rsp_probe.figures import FIGURE_NAMES

    drawn, failures = [], {}
    for module, frame, fig in _figures_of(RUN_FOLDERS[folder]):
        problems = _problems(fig)
        if problems:
            failures[module.NAME] = problems
        caption = module.caption(frame)
        assert caption.strip() and "\n" not in caption.strip(), module.NAME
        drawn.append(module.NAME)
    assert failures == {}
    assert sorted(drawn) == sorted(FIGURE_NAMES)


def test_the_committed_figures_are_those_the_modules_draw():
    """Every figure module has its PNG, CSV and caption in figures/, and no PNG there lacks
    a module (a replaced figure's files are deleted)."""
    from rsp_probe.figures import FIGURE_NAMES

    pngs = {path.stem for path in (ROOT / "figures").glob("*.png")}
    assert pngs == set(FIGURE_NAMES)
    for name in FIGURE_NAMES:
        assert (ROOT / "figures" / f"{name}.caption.md").read_text().strip()
        assert (ROOT / "figures" / f"{name}.csv").exists()


def test_few_prompts_make_an_illustration_without_cis():
    """Fewer than MIN_CI_PROMPTS prompts: no CI band or error bar, and the title says
    "illustration, n = ..."; a run with enough prompts keeps its bands and no such title."""
    from rsp_probe.figures import style
    from rsp_probe.figures.render import draw
    from rsp_probe.runs import find_runs

    small = find_runs([RUN_FOLDERS["test"] / "entropy"])
    n = int(small[0].trajectories["prompt_id"].nunique())
    assert n < style.MIN_CI_PROMPTS
    fig = draw("entropy", small)
    assert fig._suptitle.get_text().startswith(f"illustration, n = {n}")
    assert not [c for ax in fig.axes for c in ax.collections
                if (c.get_gid() or "").startswith("band:")]
    assert _problems(fig) == []
    points = draw("ablations", find_runs([RUN_FOLDERS["test"] / "entropy"]))
    assert all(len(container[2]) == 0 or not any(bar.axes for bar in container[2])
               for ax in points.axes for container in ax.containers)
    full = draw("entropy", find_runs([RUN_FOLDERS["committed"] / "entropy"]))
    assert full._suptitle is None
    assert [c for ax in full.axes for c in ax.collections
            if (c.get_gid() or "").startswith("band:")]
