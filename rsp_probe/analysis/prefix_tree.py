"""Prefix-tree analysis of sampled trajectories: where do samples of one prompt branch?

Pure numpy/pandas, no model. Steps are 1-based as everywhere: step ``t`` produced generated
token ``t`` and per-step arrays hold the value for step ``t`` at index ``t - 1``.

Finished-sequence rule: the prefix of length ``t`` of a trajectory of length ``L < t`` is the
whole trajectory (EOS included when it ended on one). A finished trajectory therefore stays
one prefix forever: identical finished trajectories count once, a finished one stays distinct
from longer ones, the distinct-prefix count never decreases in ``t`` and ends at the number
of distinct sequences. First divergence and branch points use the same rule: ending is an
outcome of its own ("end" differs from any token).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from rsp_probe.analysis.stats import N_BOOT, bootstrap_mean

__all__ = [
    "BRANCHING_COLUMNS",
    "SUMMARY_COLUMNS",
    "SUMMARY_STEPS",
    "BranchPoint",
    "PrefixTree",
    "branch_points",
    "branching_records",
    "distinct_prefix_fraction",
    "first_divergence_counts",
    "first_divergence_steps",
    "summarise_branching",
]

BRANCHING_COLUMNS = ("prompt_id", "condition", "record", "step", "value", "count", "entropy",
                     "rsp_attention")
_DTYPES = {"prompt_id": "str", "condition": "str", "record": "str", "step": "int64",
           "value": "float64", "count": "int64", "entropy": "float64",
           "rsp_attention": "float64"}
SUMMARY_STEPS = (1, 2, 3, 5, 10, 20)
SUMMARY_COLUMNS = ("condition", "statistic", "step", "value", "ci_low", "ci_high", "n_prompts",
                   "n_pairs")
NEVER = -1  # step key for pairs that never diverge / rows where a step makes no sense

Tokens = Sequence[ArrayLike]


def _as_sequences(tokens_lists: Tokens) -> list[np.ndarray]:
    seqs = [np.asarray(seq, dtype=np.int64).reshape(-1) for seq in tokens_lists]
    if not seqs:
        raise ValueError("need at least one trajectory")
    return seqs


class PrefixTree:
    """Trie of token sequences; node ``k`` is one distinct prefix, node 0 the empty one.

    Node arrays: ``depth`` (prefix length), ``n_through`` (trajectories having this prefix),
    ``n_end`` (trajectories that are exactly this prefix), ``children`` (token -> node).
    ``paths[i]`` lists the nodes of trajectory ``i`` at depths ``0..len_i``.
    """

    def __init__(self, tokens_lists: Tokens):
        self.sequences = _as_sequences(tokens_lists)
        children: list[dict[int, int]] = [{}]
        depth, n_through, n_end = [0], [0], [0]
        self.paths: list[np.ndarray] = []
        for seq in self.sequences:
            node, path = 0, [0]
            n_through[0] += 1
            for token in seq.tolist():
                nxt = children[node].get(token)
                if nxt is None:
                    nxt = children[node][token] = len(children)
                    children.append({})
                    depth.append(depth[node] + 1)
                    n_through.append(0)
                    n_end.append(0)
                n_through[nxt] += 1
                node = nxt
                path.append(node)
            n_end[node] += 1
            self.paths.append(np.asarray(path, dtype=np.int64))
        self.children = children
        self.depth = np.asarray(depth, dtype=np.int64)
        self.n_through = np.asarray(n_through, dtype=np.int64)
        self.n_end = np.asarray(n_end, dtype=np.int64)

    @property
    def n_trajectories(self) -> int:
        return len(self.sequences)

    @property
    def n_nodes(self) -> int:
        return len(self.children)

    @property
    def max_length(self) -> int:
        return int(self.depth.max())

    def n_children(self, node: int) -> int:
        """Distinct next tokens, plus one for "end" when a trajectory stops here while
        others continue (a node where everything stops is a leaf, not a branch)."""
        n_tokens = len(self.children[node])
        return n_tokens + int(n_tokens > 0 and self.n_end[node] > 0)

    def prefix_counts(self, max_step: int) -> np.ndarray:
        """``[max_step]`` distinct prefixes of length t = 1..max_step (finished-sequence rule)."""
        if max_step < 0:
            raise ValueError("max_step must be >= 0")
        size = max(max_step, self.max_length) + 1
        at_depth = np.bincount(self.depth, minlength=size)
        # Each distinct finished sequence is one node with n_end > 0; it keeps counting once
        # at every t beyond its length.
        ended = np.bincount(self.depth[self.n_end > 0], minlength=size)
        ended_before = np.concatenate([[0], np.cumsum(ended)[:-1]])  # depth < t
        return (at_depth + ended_before)[1:max_step + 1]

    def branch_nodes(self) -> list[int]:
        """Nodes with more than one child ("end" included as above), by depth then creation."""
        nodes = [k for k in range(self.n_nodes) if self.n_children(k) > 1]
        return sorted(nodes, key=lambda k: (self.depth[k], k))

    def step_means(self, values: Sequence[ArrayLike]) -> np.ndarray:
        """Per node at depth d: mean of ``values[i][d]`` (step d + 1) over the trajectories
        through the node that have a step d + 1; nan values are skipped, nan if none."""
        nodes, data = [], []
        for i, (seq, path) in enumerate(zip(self.sequences, self.paths)):
            arr = np.asarray(values[i], dtype=np.float64).reshape(-1)
            if arr.size < seq.size:
                raise ValueError(f"trajectory {i}: {arr.size} step values for {seq.size} tokens")
            nodes.append(path[:-1])  # node at depth d emits step d + 1
            data.append(arr[:seq.size])
        node_ids, vals = np.concatenate(nodes), np.concatenate(data)
        ok = ~np.isnan(vals)
        sums = np.bincount(node_ids[ok], weights=vals[ok], minlength=self.n_nodes)
        counts = np.bincount(node_ids[ok], minlength=self.n_nodes)
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def distinct_prefix_fraction(tokens_lists: Tokens, max_step: int) -> np.ndarray:
    """``[max_step]`` fraction of trajectories' distinct prefixes of length t = 1..max_step.

    Finished-sequence rule (module docstring): non-decreasing in t, ending at
    (#distinct sequences) / N; 1/N throughout for identical trajectories, 1.0 for N = 1.
    """
    tree = PrefixTree(tokens_lists)
    return tree.prefix_counts(max_step) / tree.n_trajectories


def _pair_divergence(seqs: list[np.ndarray]) -> list[int | None]:
    lengths = np.asarray([s.size for s in seqs])
    padded = np.zeros((len(seqs), max(int(lengths.max()), 1)), dtype=np.int64)
    for i, seq in enumerate(seqs):
        padded[i, :seq.size] = seq
    pos = np.arange(padded.shape[1])
    out: list[int | None] = []
    for i in range(len(seqs) - 1):  # row i against every later row at once
        shorter = np.minimum(lengths[i], lengths[i + 1:])
        differ = (padded[i + 1:] != padded[i]) & (pos < shorter[:, None])  # [n_j, L]
        # No token differs within the shorter length: the shorter one ended first ("end"
        # versus a token at its length + 1), or the two are identical.
        first = np.where(differ.any(axis=1), differ.argmax(axis=1) + 1,
                         np.where(lengths[i + 1:] != lengths[i], shorter + 1, 0))
        out += [int(f) if f else None for f in first]
    return out


def first_divergence_steps(tokens_lists: Tokens) -> list[int | None]:
    """For each pair i < j (``itertools.combinations`` order): the first 1-based step whose
    tokens differ; a sequence ending first diverges at its length + 1; None if identical."""
    return _pair_divergence(_as_sequences(tokens_lists))


def first_divergence_counts(tokens_lists: Tokens) -> dict[int, int]:
    """Pairs per first-divergence step, ascending, with key -1 (last) for never diverging."""
    steps = first_divergence_steps(tokens_lists)
    diverged = np.asarray([s for s in steps if s is not None], dtype=np.int64)
    found, counts = np.unique(diverged, return_counts=True)
    out = {int(s): int(c) for s, c in zip(found, counts)}
    n_never = len(steps) - diverged.size
    if n_never:
        out[NEVER] = n_never
    return out


@dataclass(frozen=True)
class BranchPoint:
    """A prefix after which the trajectories through it continue differently.

    step: the step whose sampled token differs between the children (prefix_len + 1).
    n_children: distinct next tokens, plus one for "end" if a trajectory stops exactly at
        the prefix while others continue.
    n_trajectories: trajectories through the prefix (those stopping there included).
    entropy, rsp_attention: mean over those trajectories of their value at ``step``
        (trajectories stopping at the prefix have none); nan when not given.
    prefix_len: length of the shared prefix.
    """

    step: int
    n_children: int
    n_trajectories: int
    entropy: float
    rsp_attention: float
    prefix_len: int


def _checked(values: Sequence[ArrayLike] | None, n: int, name: str) -> Sequence | None:
    if values is not None and len(values) != n:
        raise ValueError(f"{name}: {len(values)} arrays for {n} trajectories")
    return values


def _tree_branch_points(tree: PrefixTree, entropy=None, attention=None) -> list[BranchPoint]:
    n = tree.n_trajectories
    nan = np.full(tree.n_nodes, np.nan)
    ent = nan if _checked(entropy, n, "entropy") is None else tree.step_means(entropy)
    att = nan if _checked(attention, n, "attention") is None else tree.step_means(attention)
    return [BranchPoint(step=int(tree.depth[k]) + 1, n_children=tree.n_children(k),
                        n_trajectories=int(tree.n_through[k]), entropy=float(ent[k]),
                        rsp_attention=float(att[k]), prefix_len=int(tree.depth[k]))
            for k in tree.branch_nodes()]


def branch_points(tokens_lists: Tokens, entropy: Sequence[ArrayLike] | None = None,
                  attention: Sequence[ArrayLike] | None = None) -> list[BranchPoint]:
    """Prefix-tree nodes with more than one child, ordered by step.

    "End of sequence" counts as a child only when a trajectory ends exactly at the node while
    others continue. ``entropy`` / ``attention``: per trajectory, per-step arrays (index t - 1
    for step t; longer arrays, e.g. padded buffers, are cut to the trajectory's length).
    """
    return _tree_branch_points(PrefixTree(tokens_lists), entropy, attention)


def _frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(BRANCHING_COLUMNS)).astype(_DTYPES)


def branching_records(prompt_id, condition, tokens_lists: Tokens, answers: Sequence,
                      correct: Sequence, entropy: Sequence[ArrayLike] | None = None,
                      attention: Sequence[ArrayLike] | None = None,
                      max_step: int | None = None) -> pd.DataFrame:
    """Tidy rows (``BRANCHING_COLUMNS``) for one prompt and condition.

    record "distinct_prefix_fraction": step t = 1..max_step (default: the longest
        trajectory), value = fraction, count = distinct prefixes.
    record "first_divergence": step s (-1 = never), count = pairs, value = count / pairs.
    record "branch_point": step, value = n_children, count = n_trajectories, entropy,
        rsp_attention.
    record "answers": step -1, value = distinct final answers (None = no answer, ignored),
        count = correct trajectories.
    """
    tree = PrefixTree(tokens_lists)
    n = tree.n_trajectories
    if len(answers) != n or len(correct) != n:
        raise ValueError(f"{len(answers)} answers / {len(correct)} correct for {n} trajectories")
    max_step = tree.max_length if max_step is None else max_step
    key = {"prompt_id": str(prompt_id), "condition": str(condition)}
    blank = {"entropy": np.nan, "rsp_attention": np.nan}
    rows = [{**key, "record": "distinct_prefix_fraction", "step": t, "value": c / n,
             "count": c, **blank} for t, c in enumerate(tree.prefix_counts(max_step), 1)]
    counts = first_divergence_counts(tree.sequences)
    n_pairs = n * (n - 1) // 2
    rows += [{**key, "record": "first_divergence", "step": s, "value": c / n_pairs, "count": c,
              **blank} for s, c in counts.items()]
    rows += [{**key, "record": "branch_point", "step": b.step, "value": b.n_children,
              "count": b.n_trajectories, "entropy": b.entropy, "rsp_attention": b.rsp_attention}
             for b in _tree_branch_points(tree, entropy, attention)]
    distinct = {a for a in answers if a is not None}
    rows.append({**key, "record": "answers", "step": NEVER, "value": len(distinct),
                 "count": int(sum(bool(c) for c in correct)), **blank})
    return _frame(rows)


def _fraction_rows(condition: str, group: pd.DataFrame, steps, n_boot: int,
                   seed: int) -> list[dict]:
    frac = group[group["record"] == "distinct_prefix_fraction"]
    if frac.empty:
        return []
    longest = int(frac["step"].max())
    wide = frac.pivot(index="prompt_id", columns="step", values="value")
    # A prompt's rows stop at its longest trajectory; after that every trajectory has ended,
    # so its fraction stays at its last value (finished-sequence rule).
    wide = wide.reindex(columns=range(1, longest + 1)).ffill(axis=1)
    rows = []
    for step in (s for s in steps if s <= longest):
        mean, lo, hi = bootstrap_mean(wide[step].to_numpy(), n_boot=n_boot, seed=seed)
        rows.append({"condition": condition, "statistic": "distinct_prefix_fraction",
                     "step": step, "value": mean, "ci_low": lo, "ci_high": hi,
                     "n_prompts": len(wide)})
    return rows


def _divergence_rows(condition: str, group: pd.DataFrame) -> list[dict]:
    div = group[group["record"] == "first_divergence"]
    n_pairs = int(div["count"].sum())
    diverged = div[div["step"] != NEVER]
    steps = np.repeat(diverged["step"].to_numpy(), diverged["count"].to_numpy())
    median = float(np.median(steps)) if steps.size else np.nan
    never = n_pairs - steps.size
    common = {"condition": condition, "step": NEVER, "ci_low": np.nan, "ci_high": np.nan,
              "n_prompts": group["prompt_id"].nunique()}
    return [{**common, "statistic": "median_first_divergence", "value": median},
            {**common, "statistic": "never_diverged_share",
             "value": never / n_pairs if n_pairs else np.nan}]


def summarise_branching(frame: pd.DataFrame, steps: Sequence[int] = SUMMARY_STEPS,
                        n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """Per condition, tidy rows (``SUMMARY_COLUMNS``) from concatenated
    :func:`branching_records` frames.

    statistic "distinct_prefix_fraction": mean over prompts at each of ``steps`` up to the
        condition's longest trajectory, 95% percentile bootstrap CI resampling prompts;
        a prompt whose rows end before the step carries its last value forward. This assumes
        the records used the default ``max_step`` (rows through the longest trajectory).
    statistic "median_first_divergence": median over all diverging pairs of all prompts.
    statistic "never_diverged_share": share of all pairs that never diverge.
    Both divergence rows have step -1 and no CI; ``n_pairs`` counts all pairs.
    """
    rows = []
    for condition, group in frame.groupby("condition", sort=True):
        n_pairs = int(group.loc[group["record"] == "first_divergence", "count"].sum())
        for row in (*_fraction_rows(str(condition), group, steps, n_boot, seed),
                    *_divergence_rows(str(condition), group)):
            rows.append({**row, "n_pairs": n_pairs})
    out = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    return out.astype({"condition": "str", "statistic": "str", "step": "int64",
                       "value": "float64", "ci_low": "float64", "ci_high": "float64",
                       "n_prompts": "int64", "n_pairs": "int64"})
