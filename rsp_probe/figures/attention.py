"""Attention mass on the RSP positions by step, per layer, with the fitted dilution law.

One panel per condition (k) of each `rsp-probe attention` run. Per layer: the head-averaged
mass (rsp_probe.analysis.attention.head_averaged), mean over prompts with a 95% bootstrap
CI band, coloured by layer; in black the average over layers and heads. Dashed ("theory"):
the dilution law m_t = k e^delta / (k e^delta + n_i + t - 1) with one delta per layer (and
one for the average) fitted jointly over trajectories, each with its own prompt length n_i,
drawn as the prompt mean of the per-trajectory fitted curves (analysis.attention.
dilution_fits; dilution_fit.json, recomputed when a run lacks it or holds an older fit).
The inset shows the average and its fitted law on log-log axes.

Runs that recorded the attention budget get one more panel per condition: the change of
logit(m_t) since step 1 averaged over layers, heads and trajectories, split exactly into its
dilution part (the denominator's growth) and its suppression part (the change of the RSP
advantage delta_t), rsp_probe.analysis.budget.budget_frame.

No envelope (rsp_probe.theory.envelope) is drawn: it bounds a head whose attention logits
lie in [-B, B], and runs do not store logits, so B cannot be measured; a B chosen from the
fitted delta would contain the fit by construction and show nothing (docs/theory.md, 2.2).
Steps are drawn while at least half of the prompts still run (style.running_steps).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rsp_probe.analysis.attention import ALL_LAYERS, fitted_curve, head_averaged, saved_or_fitted
from rsp_probe.analysis.budget import budget_frame, has_budget
from rsp_probe.analysis.conditions import condition_k
from rsp_probe.analysis.stats import summarise_by_step
from rsp_probe.errors import UsageError
from rsp_probe.figures import style
from rsp_probe.runs import Run

NAME = "attention"
NEEDS = ("attention",)
COLUMNS = ["run", "condition", "k", "panel", "layer", "series", "label", "x", "y", "ci_low",
           "ci_high", "n_prompts", "n", "delta", "delta_low", "delta_high"]
BUDGET_PANEL = " budget"  # suffix of the dilution/suppression panels' names
MAX_LEGEND_LAYERS = 4  # more layers: a colour bar, and CI bands for the mean only


def _theory_rows(steps: np.ndarray, entry: dict, layer: int) -> list[pd.DataFrame]:
    curve = fitted_curve(entry, layer)
    if curve is None:
        return []
    curve = curve[curve["step"].isin(steps)]
    return [pd.DataFrame({"layer": layer, "series": "dilution_fit", "x": curve["step"],
                          "y": curve["fitted"], "delta": curve["delta"],
                          "delta_low": curve["delta_low"], "delta_high": curve["delta_high"]})]


def _run_rows(run: Run) -> pd.DataFrame:
    masses = head_averaged(run)
    if masses.empty:
        raise UsageError(f"{run.path}: no rsp_attention probe values to draw")
    steps = sorted(masses["step"].unique())
    summary = summarise_by_step(masses, steps=steps, by=("condition", "layer"))
    summary = style.running_steps(summary, keys=("condition", "layer")).rename(
        columns={"step": "x", "mean": "y"}).assign(series="observed")
    fits = saved_or_fitted(run)
    frames = [summary]
    for condition, entry in fits.items():
        # one point per step: the summary holds each step once per layer
        t = np.asarray(sorted(summary.loc[summary["condition"] == condition, "x"].unique()),
                       float)
        for layer in sorted(int(key) for key in entry["layers"]):
            frames += [rows.assign(condition=condition) for rows in
                       _theory_rows(t, entry, layer)]
    out = pd.concat([*frames, *_budget_rows(run)], ignore_index=True)
    return out.assign(run=run.id, k=out["condition"].map(condition_k(run)).astype(int))


BUDGET_SERIES = {"total": "change of logit m since step 1", "dilution": "dilution part",
                 "suppression": "suppression part"}


def _budget_rows(run: Run) -> list[pd.DataFrame]:
    """Mean over layers, heads and trajectories of each part, per condition and step."""
    if not has_budget(run):
        return []
    frame = budget_frame(run)
    frame = frame[np.isfinite(frame["total"])]
    # the steps at which at least half of the prompts still run, as for the masses
    prompts = frame.groupby(["condition", "step"])["prompt_id"].nunique() \
        if "prompt_id" in frame else frame.groupby(["condition", "step"])["trajectory"].nunique()
    most = prompts.groupby(level="condition").transform("max")
    keep = prompts[prompts >= style.RUNNING_SHARE * most].index
    frame = frame.set_index(["condition", "step"]).loc[lambda f: f.index.isin(keep)]
    frame = frame.reset_index()
    means = frame.groupby(["condition", "step"])[list(BUDGET_SERIES)].mean().reset_index()
    counts = frame.groupby(["condition", "step"])["trajectory"].nunique().to_numpy()
    return [pd.DataFrame({"condition": means["condition"], "layer": ALL_LAYERS,
                          "series": series, "x": means["step"], "y": means[series],
                          "n": counts}) for series in BUDGET_SERIES]


def _label(row) -> str:
    if row.series in BUDGET_SERIES:
        return BUDGET_SERIES[row.series]
    if row.series == "observed":
        return "mean over layers" if row.layer == ALL_LAYERS else f"layer {row.layer}"
    return "dilution law, fitted δ (dashed)"


def data(runs: list[Run]) -> pd.DataFrame:
    out = pd.concat([_run_rows(run) for run in runs], ignore_index=True)
    prefix = style.run_prefix(out)
    out["panel"] = [f"{prefix[r]}k={k}" + (BUDGET_PANEL if series in BUDGET_SERIES else "")
                    for r, k, series in zip(out["run"], out["k"], out["series"])]
    n = out.groupby(["run", "condition", "layer"])["n_prompts"].transform("max")
    out["n_prompts"] = n.astype("Int64")
    out["label"] = [_label(row) for row in out.itertuples()]
    series_rank = {"observed": 0, "dilution_fit": 1,
                   **{series: 2 + i for i, series in enumerate(BUDGET_SERIES)}}
    out = out.assign(_s=out["series"].map(series_rank)).sort_values(
        ["run", "k", "_s", "layer", "x"], kind="stable").drop(columns="_s")
    return out.reindex(columns=COLUMNS).reset_index(drop=True)  # no fit: no delta column


def make(df: pd.DataFrame):
    import matplotlib.pyplot as plt

    panels = list(dict.fromkeys(df["panel"]))
    rows, cols = style.grid(len(panels), max_cols=2)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), squeeze=False,
                             layout="tight")
    layers = sorted(set(df["layer"]) - {ALL_LAYERS})
    colors = dict(zip(layers, style.palette(len(layers))))
    for ax, panel in zip(axes.flat, panels):
        if panel.endswith(BUDGET_PANEL):
            _budget_panel(ax, df[df["panel"] == panel])
            ax.set_title(f"where the fall of logit m comes from, {panel[:-len(BUDGET_PANEL)]}")
            continue
        _panel(ax, df[df["panel"] == panel], colors, legend=len(layers) <= MAX_LEGEND_LAYERS)
        ax.set_title(f"RSP attention mass, {panel}")
    _share_y(fig, [ax for ax, panel in zip(axes.flat, panels)
                   if not panel.endswith(BUDGET_PANEL)])
    budget = [ax for ax, panel in zip(axes.flat, panels) if panel.endswith(BUDGET_PANEL)]
    if budget:  # the budget panels compare one quantity too: one y-axis
        low = min(ax.get_ylim()[0] for ax in budget)
        high = max(ax.get_ylim()[1] for ax in budget)
        for ax in budget:
            ax.set_ylim(low, high)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    if len(layers) > MAX_LEGEND_LAYERS:
        _layer_colorbar(fig, axes, layers)
    return fig


def _panel(ax, rows: pd.DataFrame, colors: dict, legend: bool) -> None:
    observed = rows[rows["series"] == "observed"]
    for layer in [*colors, ALL_LAYERS]:
        mine = observed[observed["layer"] == layer]
        if mine.empty:
            continue
        color = "black" if layer == ALL_LAYERS else colors[layer]
        label = mine["label"].iloc[0] if legend or layer == ALL_LAYERS else None
        style.with_band(ax, mine, color, label, gid=f"layer{layer}",
                        band=legend or layer == ALL_LAYERS)
    for (series, layer), curve in rows[rows["series"] != "observed"].groupby(
            ["series", "layer"], sort=False):
        color = "black" if layer == ALL_LAYERS else colors[layer]
        label = curve["label"].iloc[0]
        shown = label if layer == ALL_LAYERS else None
        style.theory_line(ax, curve["x"], curve["y"], shown, gid=f"{series}:layer{layer}",
                          color=color, linewidth=0.9 if layer != ALL_LAYERS else 1.3)
    style.log_axis(ax)
    ax.set_xlabel("decoding step t (log scale)")
    ax.set_ylabel("attention mass on RSP keys (fraction)")
    style.legend_below(ax, ncol=3, fontsize=6)


def _share_y(fig, axes) -> None:
    """The mass panels on one y-axis from 0, within [0, 1]: k compared at a glance."""
    if not axes:
        return
    top = max(max(line.get_ydata().max() for line in ax.get_lines()
                  if len(line.get_ydata())) for ax in axes)
    bands = [c.get_paths()[0].vertices[:, 1].max() for ax in axes for c in ax.collections
             if c.get_paths()]
    top = max([top, *bands])
    for ax in axes:
        ax.set_ylim(0, min(1.0, 1.08 * top))


def _budget_panel(ax, rows: pd.DataFrame) -> None:
    # the total drawn wide and pale under its two parts, so the suppression part, which
    # nearly equals it, stays visible on top
    styles = {"total": ("0.75", "-", 3.0), "dilution": ("0.2", "--", 1.1),
              "suppression": ("tab:red", "-", 1.0)}
    for series, (color, line, width) in styles.items():
        curve = rows[rows["series"] == series]
        (drawn,) = ax.plot(curve["x"], curve["y"], color=color, linestyle=line,
                           linewidth=width, label=curve["label"].iloc[0] if len(curve) else None)
        drawn.set_gid(f"budget:{series}")
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.set_xlabel("decoding step t")
    ax.set_ylabel("logit m_t − logit m_1 (nats)")
    style.legend_below(ax, ncol=2, fontsize=6)


def _layer_colorbar(fig, axes, layers: list[int]) -> None:
    import matplotlib as mpl

    cmap = mpl.colors.ListedColormap(style.palette(len(layers)))
    norm = mpl.colors.BoundaryNorm(np.arange(len(layers) + 1) - 0.5, len(layers))
    last = [ax for ax in axes.flat if ax.get_visible()][-1]
    bar = fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap),
                       cax=last.inset_axes([1.03, 0.0, 0.03, 1.0]))
    step = max(1, len(layers) // 8)
    bar.set_ticks(range(0, len(layers), step), labels=[str(v) for v in layers[::step]])
    bar.set_label("layer")


def caption(df: pd.DataFrame) -> str:
    observed = df[df["series"] == "observed"]
    fits = df[(df["series"] == "dilution_fit") & (df["layer"] == ALL_LAYERS)].drop_duplicates(
        ["run", "k"])
    deltas = "; ".join(f"k={r.k}: δ={r.delta:.2f} [{r.delta_low:.2f}, {r.delta_high:.2f}]"
                       for r in fits.itertuples())
    budget = ("Right: the change of logit m_t since step 1 (mean over layers, heads and "
              "trajectories), split exactly into its dilution part (the growing denominator) "
              "and its suppression part (the change of the RSP's advantage δ_t). "
              if df["series"].isin(list(BUDGET_SERIES)).any() else "")
    return ("Attention mass the newest query puts on the RSP keys, by decoding step, one "
            "panel per k: each layer (mean over heads) and, in black, the mean over layers and "
            f"heads with its 95% prompt-bootstrap CI band ({style.prompt_count(observed)}); "
            "steps are drawn while at least half of the prompts still run. Dashed: the "
            "dilution law m_t = k e^δ / (k e^δ + n_i + t − 1) with one δ per layer (and one "
            "for the mean) fitted jointly to every trajectory, each with its own prompt length "
            "n_i, drawn as the trajectories' fitted curves averaged the way the observed mean "
            f"is ({deltas}; 95% prompt-bootstrap intervals). The fit describes the "
            "curves; it is not a test of the law (docs/theory.md). " + budget)
