"""Teacher-forced influence of an RSP on the next-token distribution, and its scaling with mass.

From `rsp-probe influence` runs (each draw teacher-forced along its prompt's greedy baseline
continuation): KL(p_rsp || p_base) in nats, total variation, and the entropy shift
H(p_rsp) - H(p_base) in nats by step, one curve per k, mean over prompts with a 95%
bootstrap CI band (rsp_probe.analysis.stats.summarise_by_step). Fourth panel: KL against the
RSP attention mass of the same trajectory and step (rsp_attention averaged over heads and
layers, rsp_probe.analysis.attention.head_averaged), log-log, with the first-order theory's
slope 2 (dashed, drawn through the centroid of the points) and the OLS slope of log KL on
log mass from rsp_probe.theory.loglog_slope, its 95% CI resampling whole prompts. The slope
is fitted to all conditions of a run together (different k spread the masses).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rsp_probe.analysis.attention import ALL_LAYERS, head_averaged
from rsp_probe.analysis.conditions import condition_k
from rsp_probe.analysis.stats import summarise_by_step
from rsp_probe.analysis.summaries import probe_frame
from rsp_probe.errors import UsageError
from rsp_probe.figures import style
from rsp_probe.runs import Run
from rsp_probe.theory import loglog_slope

NAME = "influence"
NEEDS = ("influence",)
STEP_PANELS = {"kl": "KL(p_rsp ‖ p_base) (nats)", "tv": "total variation (probability)",
               "entropy_delta": "entropy shift H(p_rsp) − H(p_base) (nats)"}
TITLES = {"kl": "KL divergence", "tv": "total variation", "entropy_delta": "entropy shift"}
SCATTER = "kl_vs_mass"
THEORY_SLOPE = 2.0
COLUMNS = ["run", "panel", "series", "condition", "k", "label", "prompt_id", "x", "y", "ci_low",
           "ci_high", "n_prompts", "slope", "slope_ci_low", "slope_ci_high"]
RASTER_POINTS = 5000  # more scatter points than this are rasterized in the PDF


def _rsp_conditions(run: Run) -> pd.Series:
    k = condition_k(run)
    return k[k > 0]


def _curves(run: Run, ks: pd.Series) -> pd.DataFrame:
    frame = probe_frame(run, list(STEP_PANELS))
    frame = frame[frame["condition"].isin(ks.index)]
    summary = summarise_by_step(frame, steps=sorted(frame["step"].unique()))
    summary = style.running_steps(summary, keys=("condition", "probe"))
    return summary.rename(columns={"probe": "panel", "step": "x", "mean": "y"}).assign(
        series="observed")


def _points(run: Run, ks: pd.Series) -> pd.DataFrame:
    kl = probe_frame(run, ["kl"])
    kl = kl[kl["condition"].isin(ks.index)][["trajectory", "step", "condition", "prompt_id",
                                             "value"]]
    mass = head_averaged(run)
    mass = mass[mass["layer"] == ALL_LAYERS][["trajectory", "step", "value"]]
    points = kl.merge(mass, on=["trajectory", "step"], suffixes=("_kl", "_mass"))
    return pd.DataFrame({"panel": SCATTER, "series": "points", "condition": points["condition"],
                         "prompt_id": points["prompt_id"], "x": points["value_mass"],
                         "y": points["value_kl"]})


def _fit_lines(points: pd.DataFrame) -> pd.DataFrame:
    """The fitted log-log line and the slope-2 reference over the range of usable points."""
    x, y = points["x"].to_numpy(float), points["y"].to_numpy(float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    try:
        est = loglog_slope(x, y, groups=points["prompt_id"].to_numpy(), seed=0)
    except ValueError:  # too few positive points or prompts: draw the points only
        return pd.DataFrame()
    lx, ly = np.log(x[keep]), np.log(y[keep])
    ends = np.array([lx.min(), lx.max()])
    fit = np.exp(ly.mean() + est.slope * (ends - lx.mean()))
    # The reference runs through the centroid, cut to the points' box so it never
    # stretches the axes beyond the data.
    reach = lx.mean() + (np.array([ly.min(), ly.max()]) - ly.mean()) / THEORY_SLOPE
    span = np.clip(reach, lx.min(), lx.max())
    theory = np.exp(ly.mean() + THEORY_SLOPE * (span - lx.mean()))
    return pd.concat([
        pd.DataFrame({"panel": SCATTER, "series": "fit", "x": np.exp(ends), "y": fit,
                      "slope": est.slope, "slope_ci_low": est.ci_low,
                      "slope_ci_high": est.ci_high,
                      "n_prompts": points.loc[keep, "prompt_id"].nunique()}),
        pd.DataFrame({"panel": SCATTER, "series": "theory", "x": np.exp(span), "y": theory,
                      "slope": THEORY_SLOPE})], ignore_index=True)


def _label(row, prefix: str) -> str:
    if row.series == "fit":
        return (f"{prefix}fit: slope {row.slope:.2f} [{row.slope_ci_low:.2f}, "
                f"{row.slope_ci_high:.2f}]")
    if row.series == "theory":
        return f"{prefix}theory: slope 2"
    return f"{prefix}k={row.k}"


def data(runs: list[Run]) -> pd.DataFrame:
    frames = []
    for run in runs:
        ks = _rsp_conditions(run)
        if ks.empty:
            raise UsageError(f"{run.path}: no RSP condition to compare with the baseline")
        points = _points(run, ks)
        frames.append(pd.concat([_curves(run, ks), points, _fit_lines(points)],
                                ignore_index=True).assign(run=run.id))
    out = pd.concat(frames, ignore_index=True)
    k = pd.concat([_rsp_conditions(run) for run in runs]).groupby(level=0).first()
    out["k"] = out["condition"].map(k).astype("Int64")
    per_condition = out[out["series"] == "observed"].groupby(["run", "condition"])["n_prompts"]
    n = per_condition.max().rename("n_cond")
    out = out.merge(n, how="left", left_on=["run", "condition"], right_index=True)
    out["n_prompts"] = out["n_prompts"].fillna(out["n_cond"]).astype("Int64")
    prefix = style.run_prefix(out)
    out["label"] = [_label(row, prefix[row.run]) for row in out.itertuples()]
    rank = {name: i for i, name in enumerate([*STEP_PANELS, SCATTER])}
    series = {"observed": 0, "points": 1, "fit": 2, "theory": 3}
    out = out.assign(_p=out["panel"].map(rank), _s=out["series"].map(series))
    out = out.sort_values(["run", "_p", "_s", "k", "prompt_id", "x", "y"], kind="stable")
    return out[COLUMNS].reset_index(drop=True)


def make(df: pd.DataFrame):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(9.0, 7.0), layout="tight")
    labels = list(dict.fromkeys(df.loc[df["series"] == "observed", "label"]))
    colors = dict(zip(labels, style.palette(len(labels))))
    for ax, (probe, ylabel) in zip(axes.flat, STEP_PANELS.items()):
        rows = df[(df["panel"] == probe) & (df["series"] == "observed")]
        for label in labels:
            style.with_band(ax, rows[rows["label"] == label], colors[label], label, gid=label)
        style.log_axis(ax)
        ax.set_xlabel("decoding step t (log scale)")
        ax.set_ylabel(ylabel)
        ax.set_title(TITLES[probe])
        ax.legend(frameon=False, loc="upper right")
    _scatter(axes[1, 1], df[df["panel"] == SCATTER], df, colors)
    return fig


def _scatter(ax, rows: pd.DataFrame, df: pd.DataFrame, colors: dict) -> None:
    points = rows[rows["series"] == "points"]
    legend_of = df[df["series"] == "observed"].drop_duplicates(["run", "condition"])
    for run, condition, label in legend_of[["run", "condition", "label"]].itertuples(index=False):
        mine = points[(points["run"] == run) & (points["condition"] == condition)]
        ax.scatter(mine["x"], mine["y"], s=6, alpha=0.5, color=colors[label], label=label,
                   linewidths=0, rasterized=len(points) > RASTER_POINTS)
    shades = dict(zip(dict.fromkeys(rows["run"]), ("black", "0.4", "0.6", "0.75")))
    for (run, series), line in rows[rows["series"].isin(["fit", "theory"])].groupby(
            ["run", "series"], sort=False):
        shade = shades.get(run, "0.5")
        if series == "fit":
            (drawn,) = ax.plot(line["x"], line["y"], color=shade, label=line["label"].iloc[0])
            drawn.set_gid("fit:kl_vs_mass")
        else:
            style.theory_line(ax, line["x"], line["y"], line["label"].iloc[0], gid="slope2",
                              color=shade)
    ax.set_xscale("log")
    ax.set_yscale("log")
    low, high = ax.get_xlim()
    ax.set_xlim(low, min(high, 1.0))
    ax.set_xlabel("RSP attention mass (fraction, log scale)")
    ax.set_ylabel("KL(p_rsp ‖ p_base) (nats)")
    ax.set_title("KL against RSP mass")
    ax.legend(frameon=True, framealpha=0.95, facecolor="white", edgecolor="0.8", fontsize=6,
              loc="upper left", markerscale=2)


def caption(df: pd.DataFrame) -> str:
    observed = df[df["series"] == "observed"]
    fit = df[df["series"] == "fit"]
    slope = "".join(f" Fitted log-log slope {row.slope:.2f}, 95% CI [{row.slope_ci_low:.2f}, "
                    f"{row.slope_ci_high:.2f}] over {row.n_prompts} prompts (solid); dashed: "
                    "the first-order theory's slope 2 through the points' centroid."
                    for row in fit.drop_duplicates("run").itertuples())
    return ("Teacher-forced influence of an RSP along each prompt's greedy baseline answer, "
            "one colour per k: KL(p_rsp ‖ p_base), total variation and entropy shift by step, "
            f"mean over prompts with a 95% prompt-bootstrap CI band "
            f"({style.prompt_count(observed)}); steps are drawn while at least half of the "
            "prompts still run. Bottom right: KL against the RSP attention mass (mean over "
            "layers and heads) of the same trajectory and step, one point each." + slope)
