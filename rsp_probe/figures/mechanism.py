"""The paper's two stages on one page, each with its 95% CI (the README's headline figure).

Stage 1, the first steps: (a) the attention mass on the RSP keys (mean over layers and heads)
by step per k, with the dilution law, one delta per k fitted jointly over trajectories each
with its own prompt length, drawn as the prompt mean of the fitted curves (dashed,
analysis.attention.dilution_fits); (b) the entropy lift, entropy(k) - entropy(k=0) prompt
by prompt, by step. Stage 2, later: (c) the teacher-forced KL(p_rsp || p_base) by step per
k, with the fixed windows of analysis/windows.py shaded. The outcome: (d) Pass@N with and
without an RSP under temperature sampling (greedy decoding for reference), from the passk
runs.

Runs: `attention`, `entropy` (the paper's law and placement only), `influence`, `passk`.
Every curve is a mean over prompts (problems for Pass@N) with a prompt-bootstrap 95% CI;
step curves stop where fewer than half of the prompts still run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rsp_probe.analysis.attention import ALL_LAYERS, fitted_curve, head_averaged, saved_or_fitted
from rsp_probe.analysis.conditions import condition_k
from rsp_probe.analysis.stats import summarise_by_step
from rsp_probe.analysis.summaries import probe_frame
from rsp_probe.analysis.tables import PASSK_FILE
from rsp_probe.analysis.windows import EARLY, LATE_LAST, MIDDLE
from rsp_probe.errors import UsageError
from rsp_probe.figures import style
from rsp_probe.figures.entropy import main_runs
from rsp_probe.figures.series import median_length, paired_by_step, shade_windows
from rsp_probe.runs import Run

NAME = "mechanism"
NEEDS = ("attention", "entropy", "influence", "passk")
# the paper's stages name the panels; whether the data bear them out is the verdict table's
PANELS = {"mass": "(a) paper's stage 1: attention mass on the RSP",
          "lift": "(b) paper's stage 1: entropy lift by step",
          "kl": "(c) paper's stage 2: influence by step",
          "passk": "(d) outcome: Pass@N with and without RSP"}
YLABELS = {"mass": "attention mass on RSP keys (fraction)",
           "lift": "entropy(k) − entropy(k=0) (nats)",
           "kl": "KL(p_rsp ‖ p_base) (nats, log scale)",
           "passk": "Pass@N (fraction of problems)"}
PASSK_CONDITIONS = ("temp", "rsp+temp", "greedy")
COLUMNS = ["panel", "series", "run", "condition", "k", "x", "y", "ci_low", "ci_high",
           "n_prompts", "delta", "length"]


def _by_command(runs: list[Run], command: str) -> list[Run]:
    found = [run for run in runs if run.command == command]
    if not found:
        raise UsageError(f"no `rsp-probe {command}` run")
    return found


def _mass(run: Run) -> pd.DataFrame:
    masses = head_averaged(run)
    masses = masses[masses["layer"] == ALL_LAYERS]
    ks = condition_k(run)
    observed = summarise_by_step(masses, steps=sorted(masses["step"].unique()),
                                 by=("condition",)).assign(series="observed")
    observed = style.running_steps(observed, keys=("condition",))
    frames = [observed]
    for condition, entry in saved_or_fitted(run).items():
        curve = fitted_curve(entry, ALL_LAYERS)
        steps = observed.loc[observed["condition"] == condition, "step"]
        if curve is not None and steps.size:
            curve = curve[curve["step"].isin(steps)]
            frames.append(pd.DataFrame({
                "condition": condition, "step": curve["step"], "series": "dilution_fit",
                "mean": curve["fitted"], "delta": curve["delta"]}))
    out = pd.concat(frames, ignore_index=True)
    return out.assign(panel="mass", run=run.id, k=out["condition"].map(ks))


def _lift(run: Run) -> pd.DataFrame:
    ks = condition_k(run)
    zero = [c for c, k in ks.items() if k == 0]
    if len(zero) != 1:
        raise UsageError(f"{run.path}: needs one k=0 condition for the entropy lift")
    lift = paired_by_step(probe_frame(run, ["entropy"]), zero[0])
    lift = style.running_steps(lift, keys=("condition",))
    return lift.assign(panel="lift", series="observed", run=run.id,
                       k=lift["condition"].map(ks))


def _kl(run: Run) -> pd.DataFrame:
    ks = condition_k(run)
    frame = probe_frame(run, ["kl"])
    frame = frame[frame["condition"].map(ks) > 0]
    summary = summarise_by_step(frame, steps=sorted(frame["step"].unique()), by=("condition",))
    summary = style.running_steps(summary, keys=("condition",))
    lengths = frame.groupby("trajectory")["step"].max()
    return summary.assign(panel="kl", series="observed", run=run.id,
                          k=summary["condition"].map(ks), length=median_length(lengths))


def _passk(runs: list[Run]) -> pd.DataFrame:
    frames, seen = [], set()
    for run in runs:
        if not (run.path / PASSK_FILE).exists():
            raise UsageError(f"{run.path}: no {PASSK_FILE}")
        table = run.table(PASSK_FILE)
        ks = condition_k(run)
        for condition in PASSK_CONDITIONS:
            k = int(ks.get(condition, -1))
            if k < 0 or (condition, k) in seen:  # a shared baseline is drawn once
                continue
            seen.add((condition, k))
            rows = table[table["condition"] == condition].sort_values("k")
            frames.append(pd.DataFrame({
                "panel": "passk", "series": "observed", "run": run.id, "condition": condition,
                "k": k, "step": rows["k"], "mean": rows["pass_at_k"],
                "ci_low": rows["ci_low"], "ci_high": rows["ci_high"],
                "n_prompts": rows["n_problems"]}))
    return pd.concat(frames, ignore_index=True)


def data(runs: list[Run]) -> pd.DataFrame:
    """panel, series (observed / dilution_fit), run, condition, k, x (step, or N for
    Pass@N), y, ci_low, ci_high, n_prompts, delta (the fitted RSP advantage), length (the
    median trajectory length the late window is shaded at)."""
    parts = [*(_mass(run) for run in _by_command(runs, "attention")),
             *(_lift(run) for run in main_runs(_by_command(runs, "entropy"))),
             *(_kl(run) for run in _by_command(runs, "influence")),
             _passk(_by_command(runs, "passk"))]
    out = pd.concat(parts, ignore_index=True).rename(columns={"step": "x", "mean": "y"})
    out["k"] = out["k"].astype(int)
    for column in COLUMNS:
        if column not in out:
            out[column] = np.nan
    rank = {name: i for i, name in enumerate(PANELS)}
    out = out.assign(_p=out["panel"].map(rank)).sort_values(
        ["_p", "series", "run", "k", "condition", "x"], kind="stable")
    return out[COLUMNS].reset_index(drop=True)


def make(df: pd.DataFrame):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(9.0, 6.6))
    colors = style.k_colors(df["k"])
    for ax, panel in zip(axes.flat, PANELS):
        rows = df[df["panel"] == panel]
        {"mass": _draw_mass, "lift": _draw_lift, "kl": _draw_kl,
         "passk": _draw_passk}[panel](ax, rows, colors)
        ax.set_title(PANELS[panel], loc="left")
        ax.set_ylabel(YLABELS[panel])
    return fig


def _step_axis(ax) -> None:
    style.log_axis(ax)
    ax.set_xlabel("decoding step t (log scale)")


def _draw_mass(ax, rows: pd.DataFrame, colors: dict) -> None:
    observed = rows[rows["series"] == "observed"]
    for k, curve in observed.groupby("k"):
        style.with_band(ax, curve, colors[k], f"k={k}", gid=f"mass:k{k}")
    for i, (k, curve) in enumerate(rows[rows["series"] == "dilution_fit"].groupby("k")):
        style.theory_line(ax, curve["x"], curve["y"], "dilution law, fitted δ" if i == 0 else None,
                          gid=f"dilution:k{k}", color=colors[k])
    _step_axis(ax)
    top = np.nanmax(rows[["y", "ci_high"]].to_numpy(float))
    ax.set_ylim(0, min(1.0, 1.15 * top))
    ax.legend(frameon=False, loc="upper right")


def _draw_lift(ax, rows: pd.DataFrame, colors: dict) -> None:
    for k, curve in rows.groupby("k"):
        style.with_band(ax, curve, colors[k], f"k={k} − k=0", gid=f"lift:k{k}")
    ax.axhline(0, color="0.3", linewidth=0.8)
    _step_axis(ax)
    ax.legend(frameon=False, loc="upper right")


def _draw_kl(ax, rows: pd.DataFrame, colors: dict) -> None:
    shade_windows(ax, float(rows["length"].dropna().iloc[0]) if rows["length"].notna().any()
                  else None)
    for k, curve in rows.groupby("k"):
        style.with_band(ax, curve[curve["y"] > 0], colors[k], f"k={k}", gid=f"kl:k{k}")
    ax.set_yscale("log")
    ax.set_xlabel("decoding step t")
    ax.legend(frameon=False, loc="lower left")


def _draw_passk(ax, rows: pd.DataFrame, colors: dict) -> None:
    from matplotlib.ticker import FixedLocator, NullLocator

    order = {c: i for i, c in enumerate(PASSK_CONDITIONS)}
    groups = sorted(rows.groupby(["condition", "k"], sort=False),
                    key=lambda item: (order[item[0][0]], item[0][1]))
    for (condition, k), curve in groups:
        greedy = condition == "greedy"
        line = style.with_band(ax, curve, "0.45" if greedy else colors[k],
                               f"{condition}, k={k}", gid=f"passk:{condition}:k{k}",
                               marker="o", band=not greedy)
        if greedy:
            line.set_linestyle(":")
    ax.set_xscale("log", base=2)
    ns = sorted(rows["x"].unique())
    ax.xaxis.set_major_locator(FixedLocator(ns))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(ns, [f"{n:g}" for n in ns])
    ax.set_ylim(0, 1)
    ax.set_xlabel("N, samples per problem (log2 scale)")
    ax.legend(frameon=False, loc="lower right")


def caption(df: pd.DataFrame) -> str:
    """What each panel draws, its n and windows, from the plotted data."""
    def n_of(panel):
        return style.prompt_count(df[(df["panel"] == panel) & (df["series"] == "observed")])

    fits = df[df["series"] == "dilution_fit"].drop_duplicates("k")
    deltas = ", ".join(f"k={k}: δ={d:.2f}" for k, d in zip(fits["k"], fits["delta"]))
    length = df.loc[df["panel"] == "kl", "length"].dropna()
    late = (f"late = each trajectory's last {LATE_LAST} steps, shaded at the median length "
            f"({length.iloc[0]:g} steps)" if len(length) else f"late = last {LATE_LAST} steps")
    return (
        "The paper's two stages on this model, each a mean with its 95% prompt-bootstrap CI "
        "band; step curves stop where fewer than half of the prompts still run. "
        f"(a) Attention mass on the RSP keys, mean over layers and heads ({n_of('mass')}); "
        f"dashed: the dilution law m_t = k e^δ / (k e^δ + n_i + t − 1), one δ per k fitted "
        f"jointly to the trajectories, each with its own prompt length n_i, drawn as the mean "
        f"of their fitted curves ({deltas}; a description, not a test of the law). "
        f"(b) Entropy lift: next-token entropy with k RSP vectors minus without, prompt by "
        f"prompt ({n_of('lift')}). "
        f"(c) Teacher-forced KL(p_rsp ‖ p_base) along the baseline's greedy answer "
        f"({n_of('kl')}); shaded windows: early = steps {EARLY[0]}-{EARLY[1]}, middle = "
        f"steps {MIDDLE[0]}-{MIDDLE[1]}, {late}. "
        f"(d) Pass@N under temperature sampling with and without an RSP, greedy decoding "
        f"dotted ({n_of('passk').replace('prompts', 'problems')}).")
