"""Where do samples of one prompt branch? Prefix fractions and first divergences.

From `rsp-probe branching` runs (branching.parquet plus the trajectories), four panels:

- top left: distinct prefixes / N by step per condition and k, mean over prompts with a 95%
  bootstrap CI (rsp_probe.analysis.prefix_tree.summarise_branching), while at least half of
  the prompts still run; a k=0 condition shared by several runs is drawn once;
- the other three, one per condition of the first run: the first-divergence distribution
  over pairs of trajectories of a prompt, pooled over prompts (bars, 95% bootstrap CI
  resampling prompts), steps 1-16 one by one, the later steps summed into one bar, and the
  pairs that never diverged.

The data also hold the distinct strategies / N per condition (the arithmetic task labels each
trajectory's strategy; `other` is not counted; stated as claims) and the prefix tree of the
(condition, prompt) with the most branch points, which branching_tree.py draws on its own.

Prediction: for temperature conditions, the hazard 1 - sum_v p_a p_b of each pair along its
shared prefix, read from the run's teacher-forced pair overlaps (or, for runs without them,
the lower bound 1 - sqrt(C_a C_b) from the collision probes, labelled as a bound); a shared
EOS is agreement, as in the observed histogram
(rsp_probe.analysis.divergence.temperature_prediction, no free parameter). For greedy
conditions with an RSP the greedy hazard h_t = P(margin_t < c m_t) is estimated from the
stored margins and RSP masses
(rsp_probe.theory.fit_greedy_c): one row per pair of trajectories of a prompt, the pair's
mean margin and head-and-layer-averaged mass at each step of their shared prefix (present up
to and including the step where they diverge, NaN after). c, in logits per unit mass, is
fitted by maximum likelihood to the same histogram, so the dashed curve is a one-parameter
fit, not an out-of-sample prediction; the caption gives c and the TV distance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rsp_probe.analysis.branching import per_step_arrays
from rsp_probe.analysis.conditions import condition_settings
from rsp_probe.analysis.divergence import (
    divergence_counts,
    greedy_prediction,
    has_pair_overlaps,
    temperature_prediction,
)
from rsp_probe.analysis.diversity import OTHER_STRATEGY
from rsp_probe.analysis.prefix_tree import (
    PrefixTree,
    summarise_branching,
)
from rsp_probe.analysis.stats import N_BOOT, bootstrap_indices, bootstrap_mean, percentile_interval
from rsp_probe.analysis.tables import BRANCHING_FILE
from rsp_probe.analysis.windows import MIDDLE
from rsp_probe.errors import UsageError
from rsp_probe.figures import style
from rsp_probe.figures.prefix_tree import tree_rows
from rsp_probe.probes.names import COLLISION_PROBE
from rsp_probe.runs import Run

NAME = "branching"
NEEDS = ("branching",)
SHOWN_STEPS = MIDDLE[1]  # divergence steps drawn one by one: the early and middle windows
NO_PREDICTION = "no prediction: this run\nhas no collision probe"
NO_SAMPLES = "no stored margins and RSP masses\nto predict from"
COLUMNS = ["run", "panel", "series", "condition", "k", "label", "x", "y", "ci_low", "ci_high",
           "n_prompts", "n_pairs", "c", "tv", "node", "parent", "parent_x", "parent_y", "entropy",
           "n_trajectories", "is_branch", "text"]


def _conditions(run: Run) -> pd.DataFrame:
    """condition -> k, temperature, in the run's order."""
    return condition_settings(run)


def _fraction(frame: pd.DataFrame) -> pd.DataFrame:
    longest = int(frame.loc[frame["record"] == "distinct_prefix_fraction", "step"].max())
    summary = summarise_branching(frame, steps=range(1, longest + 1))
    rows = summary[summary["statistic"] == "distinct_prefix_fraction"]
    return pd.DataFrame({"panel": "prefix_fraction", "series": "observed",
                         "condition": rows["condition"], "x": rows["step"], "y": rows["value"],
                         "ci_low": rows["ci_low"], "ci_high": rows["ci_high"],
                         "n_prompts": rows["n_prompts"], "n_pairs": rows["n_pairs"]})


def _strategies(run: Run) -> pd.DataFrame:
    """Distinct strategies / N per condition, mean over prompts with a bootstrap CI."""
    traj = run.trajectories
    if "strategy" not in traj or traj["strategy"].isna().all():
        return pd.DataFrame()
    named = traj.assign(strategy=traj["strategy"].where(traj["strategy"] != OTHER_STRATEGY))
    rows = []
    for condition, group in named.groupby("condition", sort=False):
        per_prompt = group.groupby("prompt_id").agg(k=("strategy", "nunique"),
                                                    n=("strategy", "size"))
        mean, lo, hi = bootstrap_mean((per_prompt["k"] / per_prompt["n"]).to_numpy(float))
        rows.append({"panel": "strategies", "series": "observed", "condition": condition,
                     "y": mean, "ci_low": lo, "ci_high": hi, "n_prompts": len(per_prompt)})
    return pd.DataFrame(rows)


def _observed(counts: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Pooled pmf over pairs and a percentile bootstrap CI resampling prompts."""
    matrix = counts.to_numpy(float)
    pooled = matrix.sum(axis=0) / matrix.sum()
    boot = matrix[bootstrap_indices(len(matrix), N_BOOT, seed)].sum(axis=1)
    boot = boot / boot.sum(axis=1, keepdims=True)
    low, high = percentile_interval(boot, 0.95, axis=0)
    return pd.DataFrame({"x": np.arange(1, matrix.shape[1] + 1), "y": pooled, "ci_low": low,
                         "ci_high": high, "n_prompts": len(matrix),
                         "n_pairs": int(matrix.sum())})


def _prediction(run: Run, condition: str, counts: pd.DataFrame) -> pd.DataFrame:
    horizon = counts.shape[1] - 1
    try:
        fit = greedy_prediction(run, condition, counts)
    except ValueError:  # no usable margin/mass sample: nothing to predict from
        return pd.DataFrame({"series": ["no_prediction"], "text": [NO_SAMPLES]})
    pmf = np.zeros(horizon + 1)
    pmf[:fit.predicted.horizon] = fit.predicted.pmf
    pmf[-1] = fit.predicted.never
    return pd.DataFrame({"x": np.arange(1, horizon + 2), "y": pmf, "c": fit.c, "tv": fit.tv,
                         "series": "predicted"})


def _temperature_rows(run: Run, condition: str, horizon: int) -> pd.DataFrame:
    """The collision-hazard prediction, on the observed histogram's step grid."""
    if not has_pair_overlaps(run) and COLLISION_PROBE not in set(run.steps["probe"].unique()):
        return pd.DataFrame({"series": ["no_prediction"], "text": [NO_PREDICTION]})
    result = temperature_prediction(run, condition)
    pmf = np.zeros(horizon + 1)
    predicted = result["predicted"]
    pmf[:min(predicted.horizon, horizon)] = predicted.pmf[:horizon]
    pmf[-1] = predicted.never + predicted.pmf[horizon:].sum()
    return pd.DataFrame({"x": np.arange(1, horizon + 2), "y": pmf, "tv": result["tv"],
                         "series": "predicted", "text": result["hazard"]})


def _divergence(run: Run, frame: pd.DataFrame, conditions: pd.DataFrame) -> pd.DataFrame:
    horizon = int(frame.loc[frame["record"] == "distinct_prefix_fraction", "step"].max())
    rows = []
    for condition, (k, temperature) in conditions.iterrows():
        mine = frame[(frame["condition"] == condition) & (frame["record"] == "first_divergence")]
        if mine.empty:
            continue
        counts = divergence_counts(mine, horizon)
        rows.append(_observed(counts).assign(series="observed", condition=condition))
        greedy = k > 0 and (temperature is None or temperature == 0 or np.isnan(temperature))
        if greedy:
            rows.append(_prediction(run, condition, counts).assign(condition=condition))
        else:
            rows.append(_temperature_rows(run, condition, horizon).assign(condition=condition))
    return pd.concat(rows, ignore_index=True).assign(panel="first_divergence")


def _tree(run: Run, frame: pd.DataFrame, conditions: pd.DataFrame) -> pd.DataFrame:
    points = frame[frame["record"] == "branch_point"]
    if points.empty:
        return pd.DataFrame()
    rank = {c: i for i, c in enumerate(conditions.index)}
    sizes = points.groupby(["condition", "prompt_id"]).size().reset_index(name="n")
    sizes["_rank"] = sizes["condition"].map(rank)
    best = sizes.sort_values(["n", "_rank", "prompt_id"], ascending=[False, True, True]).iloc[0]
    traj = run.trajectories
    group = traj[(traj["condition"] == best["condition"])
                 & (traj["prompt_id"] == best["prompt_id"])]
    entropy = per_step_arrays(run, "entropy")
    tree = PrefixTree(group["generated_token_ids"].tolist())
    node_entropy = tree.step_means([entropy.get(i, np.full(n, np.nan)) for i, n in
                                    zip(group["id"], group["n_steps"])])
    rows = tree_rows(tree, node_entropy)
    title = f"prefix tree: {best['condition']}, prompt {best['prompt_id']}, " \
            f"N={tree.n_trajectories} ({best['n']} branch points)"
    return rows.assign(panel="tree", series="node", condition=best["condition"], label=title)


def data(runs: list[Run]) -> pd.DataFrame:
    frames = []
    for run in runs:
        if not run.has(BRANCHING_FILE):
            raise UsageError(f"{run.path}: no {BRANCHING_FILE}")
        frame = run.table(BRANCHING_FILE)
        conditions = _conditions(run)
        frames.append(pd.concat([_fraction(frame), _strategies(run),
                                 _divergence(run, frame, conditions),
                                 _tree(run, frame, conditions)],
                                ignore_index=True).assign(run=run.id))
        frames[-1]["k"] = frames[-1]["condition"].map(conditions["rsp_tokens"].astype(int))
    # every column exists even when a panel has no rows of its kind (no prediction, no strategy)
    out = pd.concat(frames, ignore_index=True).reindex(columns=COLUMNS)
    for column in ("k", "n_prompts", "n_pairs", "node", "parent", "n_trajectories"):
        out[column] = out[column].astype("Int64")
    prefix = style.run_prefix(out)
    out["label"] = [_label(row, prefix[row.run]) for row in out.itertuples()]
    return out


def _label(row, prefix: str) -> str:
    if row.panel == "tree":
        return f"{prefix}{row.label}"
    if row.series == "predicted" and not pd.isna(row.c):
        return f"{prefix}greedy hazard, c={row.c:.3g} logits/mass fitted by ML (TV {row.tv:.2f})"
    if row.series == "predicted" and row.text == "exact":
        return f"{prefix}hazard 1-sum p_a p_b, no fitted parameter (TV {row.tv:.2f})"
    if row.series == "predicted":
        return f"{prefix}bound 1-sqrt(C_a C_b), no fitted parameter (TV {row.tv:.2f})"
    if row.panel == "strategies":
        return f"{prefix}{row.condition}: distinct strategies / N (n={row.n_prompts} prompts)"
    if row.series == "no_prediction":
        return f"{prefix}{row.condition}: no prediction"
    return f"{prefix}{row.condition} (n={row.n_prompts} prompts, {row.n_pairs} pairs)"


def make(df: pd.DataFrame):
    """Distinct prefixes by step for every run, and the first-divergence distributions of the
    first run's conditions (branching_tree.py draws one prefix tree)."""
    import matplotlib.pyplot as plt

    divergence = df[df["panel"] == "first_divergence"]
    first_run = divergence["run"].iloc[0] if len(divergence) else None
    conditions = list(dict.fromkeys(divergence.loc[divergence["run"] == first_run,
                                                   "condition"]))[:3]
    fig, axes = plt.subplots(2, 2, figsize=(9.0, 6.8), squeeze=False)
    fraction = _fraction_rows(df)
    labels = list(dict.fromkeys(fraction["label"]))
    colors = dict(zip(labels, style.palette(len(labels))))
    _fractions(axes[0, 0], fraction, colors)
    color_of = dict(zip(zip(fraction["run"], fraction["condition"]), fraction["label"]))
    for ax, condition in zip(list(axes.flat)[1:], conditions):
        rows = divergence[(divergence["run"] == first_run)
                          & (divergence["condition"] == condition)]
        color = colors.get(color_of.get((first_run, condition)), "0.4")
        _divergence_panel(ax, rows, color, ax is axes[0, 1] or ax is axes[1, 0])
    for ax in list(axes.flat)[1 + len(conditions):]:
        ax.set_visible(False)
    return fig


def _fraction_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The prefix fractions, labelled by condition and k, while at least half of the prompts
    still run; a k=0 condition shared by several runs is drawn once."""
    rows = df[df["panel"] == "prefix_fraction"].copy()
    rows["label"] = [f"{c}, k={int(k)}" for c, k in zip(rows["condition"], rows["k"])]
    first = rows.groupby("label", sort=False)["run"].transform("first")
    rows = rows[rows["run"] == first]
    return style.running_steps(rows, keys=("run", "condition"))


def caption(df: pd.DataFrame) -> str:
    fraction = df[df["panel"] == "prefix_fraction"]
    predicted = df[df["series"] == "predicted"].drop_duplicates(["run", "condition"])
    fits = "; ".join(
        f"{r.run} {r.condition}: " + (f"greedy hazard with c={r.c:.3g} logits per unit mass "
                                      f"fitted by maximum likelihood" if not pd.isna(r.c)
                                      else "hazard 1 − Σ p_a p_b, no fitted parameter")
        + f", TV {r.tv:.2f}" for r in predicted.itertuples())
    return ("Where samples of one prompt branch. Top left: distinct prefixes / N by step, one "
            "line per condition and k (k=0: temperature alone), mean over prompts with a 95% "
            f"prompt-bootstrap CI band ({style.prompt_count(fraction)}); steps are drawn while "
            "at least half of the prompts still run. Other panels: the first-divergence step of "
            "pairs of trajectories of one prompt, pooled over prompts (bars, 95% CI), steps "
            f"1-{SHOWN_STEPS} one by one (the early and middle windows), the later steps summed "
            "into one bar ('later', no CI), and the pairs that never diverged; for the first "
            "branching run's conditions, with the "
            f"predicted distribution dashed ({fits}). The k=4 run's distributions are in "
            "branching.csv; the strategy counts are claims in docs/results.md.")


def _fractions(ax, rows: pd.DataFrame, colors: dict) -> None:
    for label, color in colors.items():
        style.with_band(ax, rows[rows["label"] == label], color, label, gid=label)

    style.log_axis(ax)
    ax.set_xlabel("decoding step t (log scale)")
    ax.set_ylabel("distinct prefixes / N (fraction)")
    ax.set_ylim(0, 1.02)
    ax.set_title("distinct prefixes")
    ax.legend(frameon=False, fontsize=6, loc="lower right")


def _binned(rows: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Steps 1..SHOWN_STEPS as they are, the later steps summed into one bar (its CI is not
    the sum of CIs, so it has none), and "never": the mass the eye needs, none hidden."""
    shown = rows[rows["x"] <= SHOWN_STEPS].assign(position=rows["x"])
    later = rows[(rows["x"] > SHOWN_STEPS) & (rows["x"] <= horizon)]
    never = rows[rows["x"] > horizon].assign(position=SHOWN_STEPS + 4)
    parts = [shown]
    if len(later):
        parts.append(pd.DataFrame({"position": [SHOWN_STEPS + 2], "y": [later["y"].sum()],
                                   "ci_low": [np.nan], "ci_high": [np.nan]}))
    return pd.concat([*parts, never], ignore_index=True)


def _divergence_panel(ax, rows: pd.DataFrame, color, first: bool) -> None:
    observed = rows[rows["series"] == "observed"]
    horizon = int(observed["x"].max()) - 1
    drawn = _binned(observed, horizon)
    err = np.vstack([drawn["y"] - drawn["ci_low"], drawn["ci_high"] - drawn["y"]])
    bars = ax.bar(drawn["position"], drawn["y"], width=0.8, color=color, alpha=0.6,
                  yerr=np.nan_to_num(np.clip(err, 0, None)),
                  error_kw={"elinewidth": 0.6, "capsize": 1}, label="observed")
    for patch in bars:
        patch.set_gid("observed:divergence")
    predicted = rows[rows["series"] == "predicted"]
    if not predicted.empty:
        line = _binned(predicted, horizon)
        style.theory_line(ax, line["position"], line["y"],
                          "fitted" if predicted["c"].notna().any() else "predicted",
                          gid="divergence", marker="o", markersize=2.5)
    if (rows["series"] == "no_prediction").any():
        ax.text(0.97, 0.75, rows.loc[rows["series"] == "no_prediction", "text"].iloc[0],
                transform=ax.transAxes, ha="right", va="top", fontsize=6, color="0.3")
    ticks = [1, 4, 8, 12, SHOWN_STEPS]
    ax.set_xticks([*ticks, SHOWN_STEPS + 2, SHOWN_STEPS + 4],
                  [*(str(t) for t in ticks), "later", "never"])
    ax.set_xlim(0.3, SHOWN_STEPS + 4.7)
    ax.set_ylim(0, 1)
    ax.set_xlabel("first divergence step")
    if first:
        ax.set_ylabel("share of pairs (fraction)")
    ax.set_title(f"first divergence: {observed['condition'].iloc[0]}")
    ax.legend(frameon=False, fontsize=6, loc="upper center")
