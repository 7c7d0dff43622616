"""Scaling of the output change with one head's RSP mass, within (prompt, step) cells. No torch.

The first-order theory (docs/theory.md, section 3) says TV and |entropy shift| grow like the
mass m_t of the head that carries the RSP signal and KL like m_t^2. Pooling points over
prompts and steps confounds that with everything else that differs between prompts and
steps (how peaked p is, which tokens follow), so the regression here is the within-cell one:
in each (condition, prompt, step) cell the draws of one prompt differ only in their RSP, and
log y and log m are centred on their cell means before the slope is taken (fixed effects
per cell). Slopes are per (condition, layer, head) with a percentile interval from the
package's one bootstrap resampling prompts (cells belong to one prompt, so the centring does
not change under resampling and each resample is a ratio of per-prompt sums).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from rsp_probe.analysis.stats import N_BOOT, bootstrap_indices, percentile_interval
from rsp_probe.probes.names import ATTENTION_PROBE
from rsp_probe.runs import Run

THEORY_SLOPES = {"kl": 2.0, "tv": 1.0, "entropy_delta": 1.0}
# Below this mass a head moves its attention output by less than float32 rounding of the
# other values (eps ~ 1.2e-7 times a few), so its log mass varies without any effect and
# would dominate a log-log regression; fixed here, not chosen from data.
MIN_MASS = 1e-6


@dataclass(frozen=True)
class CellSlope:
    """d log y / d log m within cells for one head, with its 95% prompt-bootstrap interval;
    `mean_mass`: the head's mean mass over the points used."""

    condition: str
    quantity: str
    layer: int
    head: int
    slope: float
    ci_low: float
    ci_high: float
    theory: float
    mean_mass: float
    n_points: int
    n_prompts: int

    @property
    def consistent(self) -> bool:
        return bool(self.ci_low <= self.theory <= self.ci_high)

    def to_dict(self) -> dict:
        return {**asdict(self), "consistent": self.consistent}


def influence_points(run: Run, quantity: str) -> pd.DataFrame:
    """Per (trajectory, step, layer, head) of an influence run's RSP draws: the head's mass
    and the step's value of `quantity` (absolute value for the entropy shift)."""
    steps = run.steps
    values = steps[steps["probe"] == quantity][["trajectory", "step", "value"]]
    mass = steps[steps["probe"] == ATTENTION_PROBE][["trajectory", "step", "layer", "head",
                                                     "value"]]
    meta = run.trajectories[["id", "condition", "prompt_id"]].rename(columns={"id": "trajectory"})
    frame = mass.rename(columns={"value": "mass"}).merge(
        values.rename(columns={"value": "y"}), on=["trajectory", "step"]).merge(meta)
    frame["y"] = frame["y"].abs()
    return frame


def centred_cells(frame: pd.DataFrame, min_mass: float = MIN_MASS) -> pd.DataFrame:
    """One head's points (columns prompt_id, step, mass, y) with dx, dy: log mass and log y
    centred within their (prompt, step) cell. Points with a mass below `min_mass`, a zero or
    missing y, and cells left with a single point carry no within-cell information."""
    keep = (frame["mass"] >= min_mass) & (frame["y"] > 0) & np.isfinite(frame["mass"]) \
        & np.isfinite(frame["y"])
    data = frame[keep].assign(lx=lambda f: np.log(f["mass"]), ly=lambda f: np.log(f["y"]))
    cell = data.groupby(["prompt_id", "step"], observed=True)
    data = data.assign(dx=data["lx"] - cell["lx"].transform("mean"),
                       dy=data["ly"] - cell["ly"].transform("mean"))
    return data[cell["lx"].transform("size") > 1]


def cell_slope(frame: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0,
               min_mass: float = MIN_MASS) -> tuple[float, float, float, int, int]:
    """(slope, ci_low, ci_high, n_points, n_prompts) of log y on log mass within (prompt,
    step) cells of one head's points (columns prompt_id, step, mass, y). Points with a mass
    below `min_mass`, a zero or missing y, and cells left with a single point carry no
    within-cell information."""
    data = centred_cells(frame, min_mass)
    sums = data.assign(sxy=data["dx"] * data["dy"], sxx=data["dx"] ** 2).groupby(
        "prompt_id", observed=True)[["sxy", "sxx"]].sum()
    if sums.empty or sums["sxx"].sum() <= 0:
        raise ValueError("no cell has two points with different masses")
    slope = float(sums["sxy"].sum() / sums["sxx"].sum())
    if n_boot <= 0 or len(sums) < 2:
        return slope, np.nan, np.nan, len(data), len(sums)
    index = bootstrap_indices(len(sums), n_boot, seed)
    sxy, sxx = sums["sxy"].to_numpy()[index].sum(1), sums["sxx"].to_numpy()[index].sum(1)
    draws = np.divide(sxy, sxx, out=np.full(sxy.shape, np.nan), where=sxx > 0)
    low, high = percentile_interval(draws[np.isfinite(draws)])
    return slope, float(low), float(high), len(data), len(sums)


def within_cell_slopes(run: Run, quantity: str = "kl", n_boot: int = N_BOOT,
                       seed: int = 0) -> list[CellSlope]:
    """cell_slope for every (condition, layer, head) of an influence run, largest mean mass
    first within each condition."""
    points = influence_points(run, quantity)
    out = []
    for (condition, layer, head), group in points.groupby(["condition", "layer", "head"],
                                                          sort=True, observed=True):
        try:
            slope, low, high, n_points, n_prompts = cell_slope(group, n_boot=n_boot, seed=seed)
        except ValueError:
            continue
        out.append(CellSlope(str(condition), quantity, int(layer), int(head), slope, low, high,
                             THEORY_SLOPES.get(quantity, np.nan), float(group["mass"].mean()),
                             n_points, n_prompts))
    return sorted(out, key=lambda s: (s.condition, -s.mean_mass))
