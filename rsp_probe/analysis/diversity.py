"""Diversity of a prompt's trajectories, measures that work on any model's text. No torch.

Per prompt and condition, over that prompt's N trajectories:
- distinct final answers (extracted answers, missing ones left out);
- mean pairwise normalised edit distance: Levenshtein distance between two trajectories'
  token ids divided by the longer length, averaged over all N(N-1)/2 pairs (0 = all the same,
  1 = nothing in common);
- distinct-n for n = 1..4 (Li et al. 2016): distinct n-grams of token ids over all n-grams,
  pooled over the prompt's trajectories;
- distinct strategies, where the task labels them (the arithmetic task's `strategy` column;
  `other`, a solution in none of the task's strategies, is not counted as one).
Each is then averaged over prompts with a bootstrap CI (prompts are the unit of replication).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from rsp_probe.analysis.stats import bootstrap_mean

DISTINCT_N = (1, 2, 3, 4)
OTHER_STRATEGY = "other"  # a solution in no known strategy is not a strategy of its own
STATISTICS = ("distinct_answers", "edit_distance", *(f"distinct_{n}" for n in DISTINCT_N),
              "distinct_strategies")


def pairwise_edit_distances(sequences: Sequence[Sequence[int]]) -> np.ndarray:
    """Normalised Levenshtein distance of every pair i < j, in itertools.combinations order.

    All pairs advance through one dynamic-programming table at once: row i of pair p holds
    the distances from a_p[:i] to every prefix of b_p. Padding beyond a sequence's end never
    feeds back into cells within both lengths, so each pair's answer is read at its own
    (len a, len b) cell.
    """
    n = len(sequences)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    if not pairs:
        return np.zeros(0)
    width = max(1, max(len(s) for s in sequences))
    padded = np.full((n, width), -1, dtype=np.int64)
    for row, seq in enumerate(sequences):
        padded[row, :len(seq)] = seq
    lengths = np.array([len(s) for s in sequences])
    left, right = (np.array(side) for side in zip(*pairs))
    a, b = padded[left], np.where(padded[right] == -1, -2, padded[right])  # pads never match
    len_a, len_b = lengths[left], lengths[right]
    columns = np.arange(width + 1)
    row = np.broadcast_to(columns, (len(pairs), width + 1)).copy()
    distance = np.where(len_a == 0, len_b, 0).astype(float)
    for i in range(1, width + 1):
        substitute = row[:, :-1] + (a[:, i - 1:i] != b)
        delete = row[:, 1:] + 1
        new = np.empty_like(row)
        new[:, 0] = i
        new[:, 1:] = np.minimum(substitute, delete)
        # insertions: new[j] = min(new[j], new[j-1] + 1), a running minimum of new[j] - j
        row = np.minimum.accumulate(new - columns, axis=1) + columns
        done = len_a == i
        distance[done] = row[done, len_b[done]]
    longest = np.maximum(np.maximum(len_a, len_b), 1)
    return distance / longest


def distinct_n(sequences: Sequence[Sequence[int]], n: int) -> float:
    """Distinct n-grams over all n-grams, pooled over the sequences (nan when none has n)."""
    grams = [tuple(seq[i:i + n]) for seq in sequences for i in range(len(seq) - n + 1)]
    return len(set(grams)) / len(grams) if grams else float("nan")


def prompt_diversity(token_ids: Sequence[Sequence[int]], answers: Sequence,
                     strategies: Sequence | None = None) -> dict[str, float]:
    """Every diversity statistic of one prompt's trajectories under one condition."""
    token_ids = [list(map(int, seq)) for seq in token_ids]
    distances = pairwise_edit_distances(token_ids)
    values = {
        "distinct_answers": float(len({a for a in answers if isinstance(a, str)})),
        "edit_distance": float(distances.mean()) if distances.size else float("nan"),
        **{f"distinct_{n}": distinct_n(token_ids, n) for n in DISTINCT_N},
        "distinct_strategies": float("nan"),
    }
    if strategies is not None:
        values["distinct_strategies"] = float(len(
            {s for s in strategies if isinstance(s, str) and s != OTHER_STRATEGY}))
    return values


def diversity_frame(trajectories: pd.DataFrame) -> pd.DataFrame:
    """prompt_id, condition and every statistic, one row per (prompt, condition)."""
    has_strategy = "strategy" in trajectories and trajectories["strategy"].notna().any()
    rows = []
    for (prompt_id, condition), group in trajectories.groupby(["prompt_id", "condition"],
                                                              sort=False):
        strategies = group["strategy"].tolist() if has_strategy else None
        rows.append({"prompt_id": prompt_id, "condition": condition,
                     **prompt_diversity(group["generated_token_ids"].tolist(),
                                        group["answer"].tolist(), strategies)})
    return pd.DataFrame(rows)


def diversity_summary(trajectories: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """condition, statistic, mean, ci_low, ci_high, n_prompts: means over prompts, 95% CIs."""
    frame = diversity_frame(trajectories)
    rows = []
    for condition, group in frame.groupby("condition", sort=False):
        for statistic in STATISTICS:
            values = group[statistic].to_numpy(dtype=float)
            if np.isnan(values).all():
                continue
            mean, lo, hi = bootstrap_mean(values, seed=seed)
            rows.append({"condition": condition, "statistic": statistic, "mean": mean,
                         "ci_low": lo, "ci_high": hi,
                         "n_prompts": int((~np.isnan(values)).sum())})
    return pd.DataFrame(rows)


def diversity_lines(trajectories: pd.DataFrame) -> list[str]:
    """The diversity section of a summary: one table, conditions by statistics."""
    from rsp_probe.analysis.stats import wide_table

    summary = diversity_summary(trajectories)
    if summary.empty:
        return []
    return ["", "## diversity per prompt (token ids; edit distance normalised by the longer "
            "trajectory), mean over prompts, 95% CI",
            wide_table(summary, row="statistic", column="condition", digits=2)]


def distinct_strategies(trajectories: pd.DataFrame) -> dict[str, float]:
    """condition -> mean over prompts of the distinct strategies among its trajectories;
    empty when the run's task labels no strategies."""
    if "strategy" not in trajectories or trajectories["strategy"].isna().all():
        return {}
    named = trajectories["strategy"].where(trajectories["strategy"] != OTHER_STRATEGY)
    per_prompt = named.groupby([trajectories["condition"], trajectories["prompt_id"]]).nunique()
    return per_prompt.groupby(level=0).mean().to_dict()
