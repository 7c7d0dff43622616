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
from rsp_probe.analysis.tables import PASSK_FILE
from rsp_probe.errors import UsageError
from rsp_probe.figures import style
from rsp_probe.runs import Run

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


PAPER_SETTINGS = {"sigma_scale": 1.0, "placement": "suffix", "law": "gaussian",
                  "fixed_draw": False}


def variant(row) -> str:
    """How a unit differs from the paper's law and placement, and its temperature."""
    parts = []
    if "sigma_scale" in row and row["sigma_scale"] == row["sigma_scale"] \
            and float(row["sigma_scale"]) != 1.0:
        parts.append(f"σ×{float(row['sigma_scale']):g}")
    if row.get("placement", "suffix") != "suffix":
        parts.append(f"{row['placement']} placement")
    if row.get("law", "gaussian") != "gaussian":
        parts.append(f"{row['law']} law")
    if bool(row.get("fixed_draw", False)):
        parts.append("one fixed draw")
    parts.append(f"T={float(row['temperature']):g}")
    return ", ".join(parts)


def make(df: pd.DataFrame):
    """One panel per metric; one row per variant (the paper's settings, or what differs from
    them, and the temperature), one colour per k, the point with its 95% CI."""
    import matplotlib.pyplot as plt

    units = _drawn_units(df)
    metrics = [m for m in METRICS if m in set(units["metric"])]
    variants = list(dict.fromkeys(units.sort_values(["_v"], kind="stable")["variant"]))
    ks = sorted(set(units["k"]))
    colors = {0: (0.0, 0.0, 0.0), **dict(zip([k for k in ks if k], style.palette(len(ks))))}
    fig, axes = plt.subplots(1, len(metrics), squeeze=False, sharey=True,
                             figsize=(3.0 * len(metrics) + 1.4, 0.32 * len(variants) + 1.6))
    for ax, metric in zip(axes[0], metrics):
        rows = units[units["metric"] == metric]
        offsets = np.linspace(-0.22, 0.22, max(len(ks), 1)) if len(ks) > 1 else [0.0]
        for offset, k in zip(offsets, ks):
            mine = rows[rows["k"] == k]
            if mine.empty:
                continue
            y = np.array([variants.index(v) for v in mine["variant"]]) + offset
            err = np.clip(np.vstack([mine["y"] - mine["ci_low"], mine["ci_high"] - mine["y"]]),
                          0, None)
            bars = ax.errorbar(mine["y"], y, xerr=err, fmt="o", color=colors[k], markersize=3,
                               capsize=1.5, linewidth=1, label=f"k={k}")
            bars.lines[0].set_gid(f"observed:{metric}:k{k}")
        if metric == "early_entropy":
            ax.axvline(0.0, color="0.5", linewidth=0.8, linestyle=":")
        else:
            ax.set_xlim(-0.02, 1.02)
        ax.set_xlabel(METRICS[metric].replace("\n", " ") if len(METRICS[metric]) < 40
                      else METRICS[metric])
        ax.legend(frameon=False, fontsize=6, loc="best")
    axes[0, 0].set_yticks(range(len(variants)), variants)
    axes[0, 0].invert_yaxis()
    return fig


def _drawn_units(df: pd.DataFrame) -> pd.DataFrame:
    """Each (metric, run, condition) once, with its k and variant; a baseline shared by
    several runs (the same condition, settings and numbers) once."""
    units = df[df["factor"] == df["factor"].iloc[0]].copy()
    k_rows = df[df["factor"] == "k"]
    units["k"] = (k_rows.set_index(["metric", "run", "condition"])["level"].astype(float)
                  .astype(int).reindex(pd.MultiIndex.from_frame(
                      units[["metric", "run", "condition"]])).to_numpy()
                  if not k_rows.empty else 0)
    units["variant"] = [variant(row) for row in _settings(df, units)]
    units = units.drop_duplicates(["metric", "variant", "k", "y", "ci_low", "ci_high"])
    main = units["variant"].str.fullmatch(r"T=[0-9.]+")
    units["_v"] = np.where(main, 0, 1)
    return units


def _settings(df: pd.DataFrame, units: pd.DataFrame) -> list[dict]:
    """Per unit, the level of every factor the frame varies (the paper's value otherwise)."""
    levels = df.pivot_table(index=["metric", "run", "condition"], columns="factor",
                            values="level", aggfunc="first")
    out = []
    for key in units[["metric", "run", "condition"]].itertuples(index=False):
        found = levels.loc[tuple(key)].dropna().to_dict() if tuple(key) in levels.index else {}
        row = {**PAPER_SETTINGS, "temperature": 0.7, **found}
        row["fixed_draw"] = str(row["fixed_draw"]) == "True"
        out.append(row)
    return out


def caption(df: pd.DataFrame) -> str:
    n = df.drop_duplicates(["metric", "run", "condition"])
    prompts = style.prompt_count(n[n["metric"] != "pass_at_n"])
    problems = style.prompt_count(n[n["metric"] == "pass_at_n"]).replace("prompts",
                                                                         "problems")
    return ("Ablations: how the early effect of an RSP changes with the law, the sigma scale, "
            "the placement, a fixed draw and the temperature, one row per variant (the "
            "paper's settings are those rows that name only a temperature), one colour per k, "
            "the mean with its 95% bootstrap CI. Left: the early entropy lift, per prompt the "
            "mean entropy over steps 1-3 with the RSP minus without at the same temperature "
            f"({prompts}); middle: the attention mass on the RSP at step 1 (mean over layers "
            "and heads); right: Pass@N at the largest N of the passk runs "
            f"({problems}; a baseline shared by two runs is drawn once).")
