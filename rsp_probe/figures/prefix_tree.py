"""A readable drawing of one rsp_probe.analysis.prefix_tree.PrefixTree.

Unbranched chains are collapsed: the drawn nodes are the root, the branch points and the
nodes where a trajectory ends; each drawn edge stands for a chain of tokens and is labelled
with its first token id and "+m" for the m tokens after it. Node x is the depth (prefix
length, so the edge's first token is generated at step parent depth + 1); leaves are spread
evenly on y in token order and a parent sits at the mean y of its children.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rsp_probe.analysis.prefix_tree import PrefixTree

BRANCH_COLOR = "#c0392b"


def collapsed_children(tree: PrefixTree) -> dict[int, list[tuple[int, int, int]]]:
    """drawn node -> [(next drawn node, first token, tokens on the edge)], by token."""
    branch = set(tree.branch_nodes())

    def drawn(node: int) -> bool:
        return node == 0 or node in branch or tree.n_end[node] > 0

    kids: dict[int, list[tuple[int, int, int]]] = {}
    todo = [0]
    while todo:
        node = todo.pop()
        kids[node] = []
        for token in sorted(tree.children[node]):
            child, length = tree.children[node][token], 1
            while not drawn(child):  # exactly one child: walk the chain
                (child,) = tree.children[child].values()
                length += 1
            kids[node].append((child, token, length))
            todo.append(child)
    return kids


def _layout(kids: dict) -> dict[int, float]:
    y: dict[int, float] = {}
    order: list[int] = []
    stack = [(0, False)]
    while stack:  # iterative post-order: children before their parent
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        stack.append((node, True))
        stack.extend((child, False) for child, _, _ in reversed(kids[node]))
    next_leaf = 0
    for node in order:
        if kids[node]:
            y[node] = float(np.mean([y[child] for child, _, _ in kids[node]]))
        else:
            y[node], next_leaf = float(next_leaf), next_leaf + 1
    return y


def tree_rows(tree: PrefixTree, node_entropy: np.ndarray) -> pd.DataFrame:
    """One row per drawn node: node, parent (drawn node above), x, y, parent_x, parent_y,
    text (edge label), entropy
    (nats, branch points only), n_trajectories (through the node), is_branch."""
    kids = collapsed_children(tree)
    y = _layout(kids)
    branch = set(tree.branch_nodes())
    parent = {child: (node, token, length) for node, out in kids.items()
              for child, token, length in out}
    rows = []
    for node in sorted(kids, key=lambda n: (int(tree.depth[n]), y[n])):
        up = parent.get(node)
        rows.append({
            "node": node, "parent": up[0] if up else np.nan,
            "x": float(tree.depth[node]), "y": y[node],
            "parent_x": float(tree.depth[up[0]]) if up else np.nan,
            "parent_y": y[up[0]] if up else np.nan,
            "text": (f"{up[1]}" + (f" +{up[2] - 1}" if up[2] > 1 else "")) if up else "",
            "entropy": float(node_entropy[node]) if node in branch else np.nan,
            "n_trajectories": int(tree.n_through[node]), "is_branch": node in branch})
    return pd.DataFrame(rows)


def draw_tree(ax, rows: pd.DataFrame) -> None:
    """Edges with token labels, branch points annotated with their entropy (nats)."""
    if rows.empty:
        ax.text(0.5, 0.5, "no branch point in any prompt", transform=ax.transAxes,
                ha="center", va="center")
        ax.set_axis_off()
        return
    edges = rows.dropna(subset=["parent_x"])
    for edge in edges.itertuples():
        (line,) = ax.plot([edge.parent_x, edge.x], [edge.parent_y, edge.y], color="0.45",
                          linewidth=0.8)
        line.set_gid("tree:edge")
        ax.text(edge.parent_x + 0.45 * (edge.x - edge.parent_x),
                edge.parent_y + 0.45 * (edge.y - edge.parent_y), edge.text, fontsize=6,
                ha="center", va="bottom", color="0.2")
    branches = rows[rows["is_branch"].astype(bool)]
    # the entropy at a branch point is its colour (a colour bar beside the tree), not a
    # text label: labels at every branch point collide with the edges' token labels
    points = ax.scatter(branches["x"], branches["y"], s=24, c=branches["entropy"],
                        cmap="viridis", edgecolors="0.2", linewidths=0.5, zorder=3,
                        label="branch point")
    bar = ax.figure.colorbar(points, ax=ax, pad=0.01, fraction=0.04)
    bar.set_label("mean next-token entropy at the branch point (nats)", fontsize=7)
    bar.ax.tick_params(labelsize=6)
    leaves = rows[~rows["node"].isin(rows["parent"].dropna())]
    ax.scatter(leaves["x"], leaves["y"], s=8, color="0.3", zorder=3, label="end of trajectory")
    for leaf in leaves[leaves["n_trajectories"] > 1].itertuples():
        ax.annotate(f"×{leaf.n_trajectories}", (leaf.x, leaf.y), xytext=(3, 0),
                    textcoords="offset points", fontsize=5.5, va="center")
    ax.set_xlabel("step (prefix length; edges labelled with token ids, +m collapsed tokens)")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_yticks([])
    ax.grid(False, axis="y")
    ax.margins(x=0.06, y=0.12)
    ax.set_title(rows["label"].iloc[0] if "label" in rows else "prefix tree")
    ax.legend(frameon=False, fontsize=6, loc="lower left")
