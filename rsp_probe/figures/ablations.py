"""Ablations: how the early effect of an RSP changes with k, sigma_scale, placement, law,
fixed_draw, temperature (and the model), over whatever runs are given.

Runs: every `rsp-probe entropy` run (the command with all RSP options and a k=0 baseline at
the same temperature) and every `rsp-probe passk` run. A unit is one RSP condition of one
run (plus, for Pass@N, the baseline conditions). Metrics, each a mean over prompts with a
95% bootstrap CI resampling prompts (rsp_probe.analysis.stats.bootstrap_mean):

- early entropy: per prompt, the mean entropy (nats) over steps 1-3 of the RSP condition's
  trajectories minus the same for the k=0 condition of the run at the same temperature;
- early RSP mass: per prompt, the head- and layer-averaged rsp_attention at step 1
  (rsp_probe.analysis.attention.head_averaged);
- Pass@N at the run's largest N, from passk.parquet (its own CI over problems).

The factors that differ between units form the columns of panels (a factor with a single
value is not drawn; with none varying, k is). In the column of a factor, x is its value and
each colour is one combination of the other varied factors, connected across x.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rsp_probe.analysis.attention import ALL_LAYERS, head_averaged
from rsp_probe.analysis.conditions import condition_settings
from rsp_probe.analysis.stats import bootstrap_mean, per_prompt_mean
from rsp_probe.analysis.summaries import probe_frame
from rsp_probe.errors import UsageError
from rsp_probe.figures import style
from rsp_probe.runs import PASSK_FILE, Run

NAME = "ablations"
NEEDS = ("entropy",)
USES = ("passk",)
FACTORS = ("k", "sigma_scale", "placement", "law", "fixed_draw", "temperature", "model")
METRICS = {"early_entropy": "early entropy, RSP − baseline\n(nats, mean over steps 1–3)",
           "early_mass": "RSP attention mass at step 1\n(fraction, mean over layers, heads)",
           "pass_at_n": "Pass@N at the largest N\n(fraction of problems)"}
EARLY_STEPS = (1, 2, 3)
COLUMNS = ["metric", "factor", "level", "x", "hue", "run", "condition", "y", "ci_low", "ci_high",
           "n_prompts"]


def _factors(run: Run) -> pd.DataFrame:
    """Per condition of the run: the value of every factor."""
    config = run.config
    conditions = condition_settings(run)
    return pd.DataFrame({
        "condition": conditions.index, "k": conditions["rsp_tokens"].astype(int).to_numpy(),
        "temperature": conditions["temperature"].astype(float).to_numpy(),
        "sigma_scale": float(config.get("sigma_scale", np.nan)),
        "placement": str(config.get("placement")), "law": str(config.get("law")),
        "fixed_draw": bool(config.get("fixed_draw")),
        "model": str(config.get("model_info", {}).get("name", config.get("model")))})


def _row(metric: str, condition: str, values) -> dict:
    mean, lo, hi = bootstrap_mean(values)
    return {"metric": metric, "condition": condition, "y": mean, "ci_low": lo, "ci_high": hi,
            "n_prompts": int(np.sum(~np.isnan(np.asarray(values, float))))}


def early_entropy(run: Run, factors: pd.DataFrame) -> list[dict]:
    frame = probe_frame(run, ["entropy"])
    per_prompt = per_prompt_mean(frame[frame["step"].isin(EARLY_STEPS)], ["condition"])
    wide = per_prompt.pivot(index="prompt_id", columns="condition", values="value")
    rows = []
    for unit in factors[factors["k"] > 0].itertuples():
        base = factors[(factors["k"] == 0) & (factors["temperature"] == unit.temperature)]
        if base.empty or unit.condition not in wide:
            continue
        diff = wide[unit.condition] - wide[base["condition"].iloc[0]]
        rows.append(_row("early_entropy", unit.condition, diff.dropna().to_numpy()))
    return rows


def early_mass(run: Run, factors: pd.DataFrame) -> list[dict]:
    masses = head_averaged(run)
    masses = masses[(masses["layer"] == ALL_LAYERS) & (masses["step"] == 1)]
    if masses.empty:
        return []
    per_prompt = per_prompt_mean(masses, ["condition"])
    return [_row("early_mass", condition, group["value"].to_numpy())
            for condition, group in per_prompt.groupby("condition", sort=False)
            if condition in set(factors.loc[factors["k"] > 0, "condition"])]


def pass_at_n(run: Run) -> list[dict]:
    if not run.has(PASSK_FILE):
        return []
    table = run.table(PASSK_FILE)
    best = table[table["k"] == table.groupby("condition")["k"].transform("max")]
    return [{"metric": "pass_at_n", "condition": r.condition, "y": r.pass_at_k,
             "ci_low": r.ci_low, "ci_high": r.ci_high, "n_prompts": r.n_problems}
            for r in best.itertuples()]


def _units(runs: list[Run]) -> pd.DataFrame:
    frames = []
    for run in runs:
        factors = _factors(run)
        rows = [*early_entropy(run, factors), *early_mass(run, factors)]
        if run.command == "passk":
            rows += pass_at_n(run)
        if rows:
            frames.append(pd.DataFrame(rows).merge(factors, on="condition").assign(run=run.id))
    if not frames:
        raise UsageError("no run holds an RSP condition with a baseline, a mass or Pass@N")
    return pd.concat(frames, ignore_index=True)


def _level(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _sort_key(value) -> tuple:
    """Numbers before strings, numbers in numeric order."""
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def _order(values: pd.Series) -> dict:
    """level string -> x position, numeric factors in numeric order."""
    unique = sorted(dict.fromkeys(values), key=_sort_key)
    return {_level(v): i for i, v in enumerate(unique)}


def data(runs: list[Run]) -> pd.DataFrame:
    units = _units(runs)
    varied = [f for f in FACTORS if units[f].nunique() > 1] or ["k"]
    frames = []
    for factor in varied:
        others = [f for f in varied if f != factor]
        hue = [", ".join(f"{g}={_level(v)}" for g, v in zip(others, values)) or "all runs"
               for values in units[others].itertuples(index=False)]
        keys = [tuple(_sort_key(v) for v in values)
                for values in units[others].itertuples(index=False)]
        hue_rank = {h: i for i, h in enumerate(dict.fromkeys(
            h for _, h in sorted(zip(keys, hue), key=lambda pair: pair[0])))}
        positions = _order(units[factor])
        level = units[factor].map(_level)
        frames.append(units.assign(factor=factor, level=level, x=level.map(positions),
                                   hue=hue, _h=[hue_rank[h] for h in hue]))
    out = pd.concat(frames, ignore_index=True)
    rank = {m: i for i, m in enumerate(METRICS)}
    out = out.assign(_m=out["metric"].map(rank), _f=out["factor"].map(varied.index))
    out = out.sort_values(["_f", "_h", "_m", "x", "run", "condition"], kind="stable")
    out["n_prompts"] = out["n_prompts"].astype("Int64")
    return out[COLUMNS].reset_index(drop=True)


def make(df: pd.DataFrame):
    import matplotlib.pyplot as plt

    metrics = [m for m in METRICS if m in set(df["metric"])]
    factors = list(dict.fromkeys(df["factor"]))
    fig, axes = plt.subplots(len(metrics), len(factors), squeeze=False,
                             figsize=(3.4 * len(factors) + 0.6, 2.5 * len(metrics) + 0.5),
                             layout="tight")
    for j, factor in enumerate(factors):
        column = df[df["factor"] == factor]
        hues = list(dict.fromkeys(column["hue"]))
        colors = dict(zip(hues, style.palette(len(hues))))
        for i, metric in enumerate(metrics):
            ax = axes[i, j]
            _panel(ax, column[column["metric"] == metric], colors, column)
            ax.set_ylabel(METRICS[metric] if j == 0 else "")
            ax.set_xlabel(factor if i == len(metrics) - 1 else "")
        proxies = [plt.Line2D([], [], color=colors[h], marker="o", markersize=3) for h in hues]
        axes[-1, j].legend(proxies, hues, loc="upper center", bbox_to_anchor=(0.5, -0.25),
                           frameon=False, title="other varied factors")
    fig.suptitle("Ablations: mean and 95% CI over prompts (problems for Pass@N)")
    return fig


def _panel(ax, rows: pd.DataFrame, colors: dict, factor_rows: pd.DataFrame) -> None:
    levels = factor_rows.drop_duplicates("x").sort_values("x")
    hues = list(colors)
    width = 0.6 / max(len(hues), 1)
    for index, hue in enumerate(hues):
        mine = rows[rows["hue"] == hue].sort_values("x")
        if mine.empty:
            continue
        x = mine["x"] + (index - (len(hues) - 1) / 2) * width
        err = np.clip(np.vstack([mine["y"] - mine["ci_low"], mine["ci_high"] - mine["y"]]),
                      0, None)
        bars = ax.errorbar(x, mine["y"], yerr=err, fmt="o-", color=colors[hue], markersize=3,
                           capsize=2, linewidth=1, label=hue)
        bars.lines[0].set_gid(f"observed:{hue}")
    metric = rows["metric"].iloc[0] if not rows.empty else None
    if metric == "early_entropy":
        ax.axhline(0.0, color="0.5", linewidth=0.8, linestyle=":")
    elif metric == "pass_at_n":
        ax.set_ylim(-0.02, 1.02)
    elif metric == "early_mass":
        ax.set_ylim(bottom=0)
    ax.set_xticks(levels["x"], levels["level"])
    ax.set_xlim(-0.6, len(levels) - 0.4)
    if metric is not None:
        n = rows["n_prompts"]
        ax.set_title(f"n={n.min()}" + (f"–{n.max()}" if n.max() != n.min() else "") +
                     (" problems" if metric == "pass_at_n" else " prompts"), fontsize=7)
