"""Size and power of the within-cell slope comparison (analysis.scaling.cell_slope) by
simulation at a measured head's own design. No torch.

A synthetic head keeps the real head's points: its (prompt, step) cells and the masses of the
draws in them. Only log y is replaced, by ``b log m + cell effect + noise`` with independent
Gaussian noise of the real head's within-cell residual standard deviation. Within a cell the
cell effect cancels, so a replicate's per-prompt sums are ``sxy_p = b sxx_p + sum dx eps``
and its slope and prompt-bootstrap interval are computed exactly as cell_slope computes them
(the same resamples). Scenarios: the theory's slope (the null), 0 (the output does not move
with this head's mass), half the theory's slope and the theory's slope plus 1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rsp_probe.analysis.scaling import MIN_MASS, centred_cells
from rsp_probe.analysis.stats import N_BOOT, bootstrap_indices, percentile_interval

N_REPLICATES = 100


def _design(frame: pd.DataFrame, min_mass: float = MIN_MASS):
    """(dx, prompt index, residual sd) of one head's points, filtered and centred within
    (prompt, step) cells as cell_slope does."""
    data = centred_cells(frame, min_mass)
    dx, dy = data["dx"].to_numpy(), data["dy"].to_numpy()
    if dx.size == 0 or not (dx**2).sum() > 0:
        raise ValueError("no cell has two points with different masses")
    slope = float((dx * dy).sum() / (dx**2).sum())
    cells = data.groupby(["prompt_id", "step"], observed=True).ngroup().to_numpy()
    dof = max(dx.size - cells.max() - 2, 1)
    sigma = float(np.sqrt(((dy - slope * dx) ** 2).sum() / dof))
    prompts = pd.factorize(data["prompt_id"], sort=True)[0]
    return dx, prompts, sigma


def scenarios(theory: float) -> dict[str, float]:
    """Scenario name -> the slope the synthetic heads follow (the first is the null)."""
    return {f"slope {theory:g}": theory, "slope 0": 0.0, f"slope {theory / 2:g}": theory / 2,
            f"slope {theory + 1:g}": theory + 1}


def calibrate_slope(frame: pd.DataFrame, theory: float, n_rep: int = N_REPLICATES,
                    n_boot: int = N_BOOT, seed: int = 0) -> dict[str, float]:
    """Scenario -> share of replicates whose interval contains `theory` (the null) or
    excludes it (each alternative), at this head's points (prompt_id, step, mass, y)."""
    dx, prompts, sigma = _design(frame)
    n_prompts = int(prompts.max()) + 1
    onehot = np.zeros((dx.size, n_prompts))
    onehot[np.arange(dx.size), prompts] = dx  # [points, prompts]: dx in its prompt's column
    sxx = np.bincount(prompts, weights=dx**2, minlength=n_prompts)
    index = bootstrap_indices(n_prompts, n_boot, seed)  # the resamples cell_slope uses
    boot_sxx = sxx[index].sum(axis=1)  # [n_boot]
    rng = np.random.default_rng(seed)
    out = {}
    for number, (name, slope) in enumerate(scenarios(theory).items()):
        noise = rng.standard_normal((n_rep, dx.size)) * sigma @ onehot  # [n_rep, prompts]
        sxy = slope * sxx + noise
        draws = sxy[:, index].sum(axis=2) / boot_sxx  # [n_rep, n_boot]
        low, high = percentile_interval(draws, axis=1)
        inside = (low <= theory) & (theory <= high)
        out[name] = float(inside.mean() if number == 0 else 1.0 - inside.mean())
    return out
