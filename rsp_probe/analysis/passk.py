"""Pass@k per condition from a run's graded trajectories, with bootstrap CIs over problems
and paired differences between conditions. No torch."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rsp_probe.analysis.grades import graded, solved, ungraded
from rsp_probe.analysis.pass_at_k import bootstrap_pass_at_k, paired_difference
from rsp_probe.runs import Run


def problem_counts(run: Run) -> pd.DataFrame:
    """Per (condition, problem): samples drawn, graded n, correct c, ungraded, distinct answers."""
    frame = run.trajectories.assign(graded=lambda f: graded(f), solved=lambda f: solved(f),
                                    ungraded=lambda f: ungraded(f))
    grouped = frame.groupby(["condition", "prompt_id"])
    counts = grouped.agg(drawn=("id", "size"), n=("graded", "sum"), c=("solved", "sum"),
                         ungraded=("ungraded", "sum"),
                         distinct_answers=("answer", lambda a: a.dropna().nunique()))
    return counts.reset_index()


def _effective(counts: pd.DataFrame, n_target: int) -> tuple[np.ndarray, np.ndarray]:
    """(c, n) per problem, n counting graded samples only. A deterministic condition (one
    trajectory per problem) stands for n_target identical samples."""
    c = counts["c"].to_numpy(dtype=int)
    n = counts["n"].to_numpy(dtype=int)
    return (c * n_target, n * n_target) if int(counts["drawn"].max()) == 1 else (c, n)


def passk_table(run: Run, ks) -> pd.DataFrame:
    """condition, k, pass_at_k, ci_low, ci_high, accuracy, distinct_answers, n_problems, n,
    ungraded. Ungraded samples are left out; a problem with fewer than k graded samples is
    left out of Pass@k at that k (n_problems says how many remain)."""
    counts = problem_counts(run)
    n_target = int(counts["drawn"].max())
    rows = []
    for condition, group in counts.groupby("condition", sort=False):
        c, n = _effective(group, n_target)
        has_any = n > 0
        accuracy = float((c[has_any] / n[has_any]).mean()) if has_any.any() else float("nan")
        for k in ks:
            keep = n >= k
            if k > n_target or not keep.any():
                continue
            mean, lo, hi = bootstrap_pass_at_k(c[keep], n[keep], k)
            rows.append({"condition": condition, "k": k, "pass_at_k": mean, "ci_low": lo,
                         "ci_high": hi, "accuracy": accuracy,
                         "distinct_answers": float(group["distinct_answers"].mean()),
                         "n_problems": int(keep.sum()), "n": n_target,
                         "ungraded": int(group["ungraded"].sum())})
    return pd.DataFrame(rows)


def paired_table(run: Run, ks, pairs) -> pd.DataFrame:
    """Pass@k(a) - Pass@k(b) on the same problems, with a bootstrap CI."""
    counts = problem_counts(run)
    n_target = int(counts["drawn"].max())
    by_condition = {name: group.sort_values("prompt_id") for name, group in
                    counts.groupby("condition")}
    rows = []
    for a, b in pairs:
        if a not in by_condition or b not in by_condition:
            continue
        (c_a, n_a), (c_b, n_b) = (_effective(by_condition[x], n_target) for x in (a, b))
        for k in ks:
            keep = (n_a >= k) & (n_b >= k)  # the same problems on both sides
            if not keep.any():
                continue
            diff, lo, hi = paired_difference(c_a[keep], c_b[keep], n_a[keep], n_b[keep], k)
            rows.append({"a": a, "b": b, "k": k, "difference": diff, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


def default_pairs(conditions) -> list[tuple[str, str]]:
    """RSP against its no-RSP counterpart: temp+rsp vs temp, greedy+rsp vs greedy."""
    names = list(conditions)
    pairs = []
    for name in names:
        parts = set(name.split("+"))
        if "rsp" in parts:
            base = next((m for m in names if set(m.split("+")) == parts - {"rsp"}), None)
            if base:
                pairs.append((name, base))
    return pairs
