"""The dilution law per head as a calibrated test, and the step-1 delta measured by inverting
the identity. No torch.

The theory (docs/theory.md, section 2) is about one head's newest query, and the law is a
statement about each trajectory with its own prompt length n: delta_t, the identity inverted
at every step, is constant along the trajectory. So nothing here averages curves over
prompts of different lengths. Per (condition, layer, head), the excess exponent b = 1 - alpha
(rsp_probe.theory.exponent) is the within-trajectory slope of delta_t on log(n + t - 1),
with a cluster-robust interval over prompts; the law is rejected when the interval excludes 0.
Each head is calibrated at its own design and noise (rsp_probe.theory.calibration): a head
whose test keeps its size and reaches power against every named alternative carries a
"test", any other a "consistency check". Cells of mass exactly 0 (float32 underflow) have no
finite delta_t; they are left out and counted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from rsp_probe.analysis.stats import bootstrap_mean
from rsp_probe.probes.names import ATTENTION_PROBE
from rsp_probe.runs import Run
from rsp_probe.theory import invert_delta
from rsp_probe.theory.calibration import N_REPLICATES, HeadDesign, calibrate, is_test, noise_of
from rsp_probe.theory.exponent import ExponentTest, exponent_test


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


@dataclass(frozen=True)
class Estimate:
    """A statistic with its 95% prompt-bootstrap percentile interval (NaN when undefined)."""

    value: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict:
        return asdict(self)


def step_delta(cells: pd.DataFrame, step: int = 1, n_boot: int = 2000, seed: int = 0) -> Estimate:
    """Mean over prompts of the identity-inverted delta at `step` (each trajectory with its
    own n), 95% CI resampling prompts. Masses of exactly 0 or 1 have no finite delta and are
    left out."""
    at = cells[cells["step"] == step]
    delta = invert_delta(at["mass"].to_numpy(), step, at["n"].to_numpy(), at["k"].to_numpy())
    at = at.assign(delta=delta)[np.isfinite(delta)]
    per_prompt = at.groupby("prompt_id", observed=True)["delta"].mean().to_numpy()
    return Estimate(*bootstrap_mean(per_prompt, n_boot=n_boot, seed=seed))


@dataclass(frozen=True)
class HeadExponent:
    """One head's excess-exponent test with its own calibration. `rates`: share of null
    replicates accepted ("dilution") and of each alternative's replicates rejected; `kind`:
    "test" when those reach calibration.MIN_ACCEPTANCE / MIN_POWER, else "consistency
    check"; `delta_step1`: the step-1 logit advantage (a measurement, not a test)."""

    condition: str
    layer: int
    head: int
    k: int
    exponent: ExponentTest
    delta_step1: Estimate
    sigma: float
    rho: float
    rates: dict[str, float] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "test" if self.rates and is_test(self.rates) else "consistency check"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["exponent"] = self.exponent.to_dict()
        out["kind"] = self.kind
        return out


def head_arrays(cells: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """(mass [I, T], steps [T], n [I], prompt [I], k) of one head's cells; NaN after a
    trajectory's end."""
    mass = cells.pivot_table(index="trajectory", columns="step", values="mass",
                             aggfunc="mean", observed=True).sort_index(axis=1)
    meta = cells.groupby("trajectory", observed=True)[["n", "prompt_id"]].first().loc[
        mass.index]
    return (mass.to_numpy(float), mass.columns.to_numpy(float), meta["n"].to_numpy(float),
            meta["prompt_id"].to_numpy(), float(cells["k"].iloc[0]))


def head_design(mass, steps, n, prompt, k) -> HeadDesign:
    """The measured head's design and noise, for its calibration."""
    x = np.log(n[:, None] + steps[None, :] - 1.0)
    delta = invert_delta(np.nan_to_num(np.clip(mass, 0, 1)), steps[None, :], n[:, None], k)
    delta = np.where(np.isfinite(mass) & np.isfinite(delta), delta, np.nan)
    measured = np.isfinite(delta)
    with np.errstate(invalid="ignore"):
        per_trajectory = np.nanmean(np.where(measured, delta, np.nan), axis=1)
    sigma, rho = noise_of(delta, x)
    return HeadDesign(x=x, steps=steps, measured=measured, prompt=prompt,
                      delta=np.nan_to_num(per_trajectory), sigma=sigma, rho=rho)


def head_exponent(cells: pd.DataFrame, n_rep: int = N_REPLICATES, seed: int = 0) -> HeadExponent:
    """The excess-exponent test of one (condition, layer, head) and, with n_rep > 0, its
    calibration at the head's own design and noise."""
    first = cells.iloc[0]
    mass, steps, n, prompt, k = head_arrays(cells)
    test = exponent_test(mass, steps, n, k, prompt)
    design = head_design(mass, steps, n, prompt, k)
    rates = (calibrate(design, n_rep, seed)
             if n_rep > 0 and np.isfinite(test.ci_low) and design.sigma > 0 else {})
    return HeadExponent(condition=str(first["condition"]), layer=int(first["layer"]),
                        head=int(first["head"]), k=int(k), exponent=test,
                        delta_step1=step_delta(cells, 1, seed=seed), sigma=design.sigma,
                        rho=design.rho, rates=rates)


def head_exponents(run_or_cells: Run | pd.DataFrame, n_rep: int = N_REPLICATES,
                   seed: int = 0) -> list[HeadExponent]:
    """head_exponent for every (condition, layer, head) of an attention run (or its cells)."""
    cells = run_or_cells if isinstance(run_or_cells, pd.DataFrame) else head_cells(run_or_cells)
    return [head_exponent(group, n_rep=n_rep, seed=seed) for _, group in
            cells.groupby(["condition", "layer", "head"], sort=True, observed=True)]
