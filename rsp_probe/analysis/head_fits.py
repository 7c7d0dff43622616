"""Per-head dilution fits with prompt-bootstrap intervals, the step-1 delta measured by
inverting the identity, and the mixture of per-head laws. No torch.

The theory (docs/theory.md, section 2) is about one head's newest query, so fits are per
(condition, layer, head). Each head's curve is built prompt-first: trajectories of one prompt
are averaged per step, then the step's mean over prompts and its standard error over prompts
(a step enters only when MIN_PROMPTS prompts reached it, so a step that few long trajectories
reach neither dominates nor changes the mix silently). Fits are weighted by those standard
errors; parameters and delta-AIC get percentile intervals from the package's one bootstrap
(analysis.stats.bootstrap_indices) resampling prompts. A law is beaten only when its AIC
exceeds the best one's by more than windows.DELTA_AIC_DECISIVE.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from rsp_probe.analysis.stats import bootstrap_indices, bootstrap_mean, percentile_interval
from rsp_probe.analysis.windows import DELTA_AIC_DECISIVE
from rsp_probe.probes.names import ATTENTION_PROBE
from rsp_probe.runs import Run
from rsp_probe.theory import compare_models, dilution_mass, fit_dilution, invert_delta
from rsp_probe.theory.fit import CurveFit, refit

MIN_PROMPTS = 3  # a step enters a fit only when this many prompts reached it
FIT_N_BOOT = 200  # resamples for fitted parameters (each resample refits two laws)


def head_cells(run: Run) -> pd.DataFrame:
    """RSP mass per (trajectory, step, layer, head) with condition, k, prompt_id and n (the
    prompt's input tokens without the RSP)."""
    steps = run.steps[run.steps["probe"] == ATTENTION_PROBE]
    meta = run.trajectories[["id", "condition", "prompt_id", "rsp_tokens"]].copy()
    meta["n"] = run.trajectories["prompt_token_ids"].map(len).astype(float)
    frame = steps[["trajectory", "step", "layer", "head", "value"]].rename(
        columns={"value": "mass"})
    # float32 sums of attention weights can exceed 1 by a rounding error
    frame["mass"] = frame["mass"].astype(float).clip(0.0, 1.0)
    meta = meta.rename(columns={"id": "trajectory", "rsp_tokens": "k"})
    return frame.merge(meta, on="trajectory")


def prompt_matrix(cells: pd.DataFrame) -> pd.DataFrame:
    """[prompt, step] per-prompt mean mass (NaN where no trajectory of the prompt got there)."""
    return cells.pivot_table(index="prompt_id", columns="step", values="mass", aggfunc="mean",
                             observed=True).sort_index(axis=1)


def curve_from_matrix(matrix: np.ndarray, steps: np.ndarray,
                      min_prompts: int = MIN_PROMPTS) -> tuple[np.ndarray, ...]:
    """(steps, mean, standard error, n_prompts) over prompts at each step with at least
    `min_prompts` prompts. A zero standard error (identical prompts) is raised to the smallest
    positive one so that a weight stays finite."""
    present = ~np.isnan(matrix)
    count = present.sum(axis=0)
    keep = count >= max(min_prompts, 2)
    values = matrix[:, keep]
    mean = np.nanmean(values, axis=0)
    se = np.nanstd(values, axis=0, ddof=1) / np.sqrt(count[keep])
    positive = se[se > 0]
    floor = positive.min() if positive.size else 1e-12
    return steps[keep], mean, np.maximum(se, floor), count[keep]


@dataclass(frozen=True)
class Estimate:
    """A statistic with its 95% prompt-bootstrap percentile interval (NaN when undefined)."""

    value: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class HeadFit:
    """One head's weighted fits. `delta`: the constant-delta dilution fit (logit units);
    `delta_aic`: AIC(dilution) - AIC(best other law) (> DELTA_AIC_DECISIVE: dilution beaten,
    < -DELTA_AIC_DECISIVE: dilution wins); `delta_step1`: the step-1 logit advantage from the
    identity's inversion (a measurement, not a fit)."""

    condition: str
    layer: int
    head: int
    k: int
    n: float
    best_other: str
    delta: Estimate
    delta_aic: Estimate
    delta_step1: Estimate
    n_steps: int
    n_prompts: int
    fits: tuple[CurveFit, ...]

    @property
    def verdict(self) -> str:
        if self.delta_aic.value > DELTA_AIC_DECISIVE:
            return f"beaten by {self.best_other}"
        if self.delta_aic.value < -DELTA_AIC_DECISIVE:
            return f"beats {self.best_other}"
        return "undecided"

    def to_dict(self) -> dict:
        out = {key: value for key, value in asdict(self).items() if key != "fits"}
        out["fits"] = [fit.to_dict() for fit in self.fits]
        out["verdict"] = self.verdict
        return out


def _delta_and_aic(steps, matrix, dilution: CurveFit, other: CurveFit) -> tuple[float, float]:
    """(delta, AIC(dilution) - AIC(other)) refitted to one resample's curve."""
    t, mean, se, _ = curve_from_matrix(matrix, steps)
    again = refit(dilution, t, mean, se)
    return again.params["delta"], again.aic - refit(other, t, mean, se).aic


def _boot(statistic, matrix: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """statistic(resampled matrix) for each prompt resample; failed fits give NaN rows."""
    out = []
    for rows in bootstrap_indices(matrix.shape[0], n_boot, seed):
        try:
            out.append(statistic(matrix[rows]))
        except ValueError:  # a resample with too few steps or no mass
            out.append((np.nan, np.nan))
    return np.asarray(out, dtype=float)


def _estimate(value: float, draws: np.ndarray) -> Estimate:
    draws = draws[np.isfinite(draws)]
    if draws.size < 2:
        return Estimate(float(value), np.nan, np.nan)
    low, high = percentile_interval(draws)
    return Estimate(float(value), float(low), float(high))


def step_delta(cells: pd.DataFrame, step: int = 1, n_boot: int = 2000, seed: int = 0) -> Estimate:
    """Mean over prompts of the identity-inverted delta at `step` (each trajectory with its
    own n), 95% CI resampling prompts. Masses of exactly 0 or 1 have no finite delta and are
    left out."""
    at = cells[cells["step"] == step]
    delta = invert_delta(at["mass"].to_numpy(), step, at["n"].to_numpy(), at["k"].to_numpy())
    at = at.assign(delta=delta)[np.isfinite(delta)]
    per_prompt = at.groupby("prompt_id", observed=True)["delta"].mean().to_numpy()
    return Estimate(*bootstrap_mean(per_prompt, n_boot=n_boot, seed=seed))


def fit_head(cells: pd.DataFrame, n_boot: int = FIT_N_BOOT, seed: int = 0) -> HeadFit:
    """Weighted fits of every law to one (condition, layer, head)'s cells, with prompt-
    bootstrap intervals for delta and for AIC(dilution) - AIC(best other law)."""
    first = cells.iloc[0]
    k, n = int(first["k"]), float(cells.groupby("trajectory")["n"].first().mean())
    table = prompt_matrix(cells)
    steps, matrix = table.columns.to_numpy(float), table.to_numpy(float)
    t, mean, se, count = curve_from_matrix(matrix, steps)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        fits = tuple(compare_models(t, mean, n, k, se))
        by_model = {fit.model: fit for fit in fits}
        other = min((f for f in fits if f.model != "dilution"), key=lambda f: f.aic)
        dilution = by_model["dilution"]
        draws = _boot(lambda m: _delta_and_aic(steps, m, dilution, other), matrix,
                      n_boot, seed) if n_boot > 0 else np.full((0, 2), np.nan)
    return HeadFit(
        condition=str(first["condition"]), layer=int(first["layer"]), head=int(first["head"]),
        k=k, n=n, best_other=other.model,
        delta=_estimate(dilution.params["delta"], draws[:, 0]),
        delta_aic=_estimate(dilution.aic - other.aic, draws[:, 1]),
        delta_step1=step_delta(cells, 1, seed=seed), n_steps=int(t.size),
        n_prompts=int(count.max()) if count.size else 0, fits=fits)


def head_fits(run_or_cells: Run | pd.DataFrame, n_boot: int = FIT_N_BOOT,
              seed: int = 0) -> list[HeadFit]:
    """fit_head for every (condition, layer, head) of an attention run (or its head_cells)."""
    cells = run_or_cells if isinstance(run_or_cells, pd.DataFrame) else head_cells(run_or_cells)
    out = []
    for _, group in cells.groupby(["condition", "layer", "head"], sort=True, observed=True):
        try:
            out.append(fit_head(group, n_boot=n_boot, seed=seed))
        except ValueError:  # a head with too few steps or no mass has no fit
            continue
    return out


@dataclass(frozen=True)
class MixtureFit:
    """The head-average curve of one condition (and layer, or -1 for all) against the
    mixture of its heads' own dilution laws (no parameter fitted to the average) and the
    single constant-delta law fitted to the average. AIC counts the mixture's H deltas."""

    condition: str
    layer: int
    n_heads: int
    aic_mixture: float
    aic_single: float
    r2_mixture: float
    r2_single: float

    def to_dict(self) -> dict:
        return asdict(self)


def mixture_fit(cells: pd.DataFrame, fits: list[HeadFit], layer: int = -1) -> MixtureFit:
    """Compare, on the head-averaged curve of one condition's `cells` (restricted to `layer`
    unless -1), the mixture of the per-head dilution fits with one fitted delta."""
    mine = cells if layer < 0 else cells[cells["layer"] == layer]
    heads = {(f.layer, f.head): f for f in fits}
    averaged = mine.groupby(["trajectory", "step", "prompt_id"], observed=True)["mass"].mean()
    table = averaged.reset_index().pivot_table(index="prompt_id", columns="step",
                                               values="mass", aggfunc="mean")
    t, mean, se, _ = curve_from_matrix(table.to_numpy(float), table.columns.to_numpy(float))
    used = [heads[key] for key in
            mine[["layer", "head"]].drop_duplicates().itertuples(index=False, name=None)
            if key in heads]
    if not used:
        raise ValueError("no per-head fit for these cells")
    k, n = used[0].k, used[0].n
    mixture = np.mean([dilution_mass(t, n, k, f.delta.value) for f in used], axis=0)
    single = fit_dilution(t, mean, n, k, se)
    rss = float(np.sum(((mixture - mean) / se) ** 2))
    centre = np.average(mean, weights=se**-2)
    tss = float(np.sum(((mean - centre) / se) ** 2))
    aic = t.size * np.log(max(rss, 1e-300) / t.size) + 2 * len(used)
    return MixtureFit(str(mine["condition"].iloc[0]), layer, len(used), float(aic),
                      single.aic, 1 - rss / tss if tss > 0 else np.nan, single.r2)
