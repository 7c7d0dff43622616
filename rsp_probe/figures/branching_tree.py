"""One prompt's prefix tree from `rsp-probe branching` runs: the (condition, prompt) with
the most branch points of the first run (branching.py computes it; this figure draws it on
its own so its labels stay readable)."""

from __future__ import annotations

import pandas as pd

from rsp_probe.figures import branching

NAME = "branching_tree"
NEEDS = ("branching",)


def data(runs) -> pd.DataFrame:
    frame = branching.data(runs)
    tree = frame[frame["panel"] == "tree"]
    return tree[tree["run"] == tree["run"].iloc[0]].reset_index(drop=True)


def make(df: pd.DataFrame):
    import matplotlib.pyplot as plt

    from rsp_probe.figures.prefix_tree import draw_tree

    fig, ax = plt.subplots(figsize=(9.0, 5.0))
    draw_tree(ax, df)
    return fig


def caption(df: pd.DataFrame) -> str:
    return (f"{df['label'].iloc[0]} ({df['run'].iloc[0]} run). Unbranched chains are "
            "collapsed: nodes are the root, the branch points (coloured by the mean "
            "next-token entropy, in nats, of the trajectories through them) and the ends; "
            "x is the step; an edge is labelled with its first token id and +m for the m "
            "further tokens it stands for.")
