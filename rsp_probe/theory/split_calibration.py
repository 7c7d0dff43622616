"""Size and power of the pooled dilution/suppression split (rsp_probe.theory.budget.
pooled_split) by simulation: is "no suppression" (the suppression part's interval contains
0) accepted when every cell keeps its advantage, and rejected when it does not?

Synthetic cells copy the measured design at step s: each cell's own n, k, prompt and
step-1 advantage delta_1, and its head's measured noise sigma (logit units), drawn
independently at step 1 and at step s. Scenarios, as the change of each cell's advantage
from step 1 to step s (d = log((n + s - 1) / n), the dilution):

- ``dilution`` (the null): 0;
- ``constant mass``: +d (the advantage rises exactly as fast as the keys dilute it);
- ``power law a=0.5`` / ``a=2``: (1 - a) d;
- ``exponential forgetting``: d - lam (s - 1), half-life calibration.HALF_LIFE steps.

Pure numpy.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import expit

from rsp_probe.theory.budget import pooled_split
from rsp_probe.theory.calibration import ALTERNATIVES, N_REPLICATES, NULL, scenario_shift

__all__ = ["calibrate_split"]

SPLIT_N_BOOT = 400  # resamples per replicate: enough for a 95% interval's ends


def calibrate_split(delta_1, n, k, s: int, cluster, sigma, n_rep: int = N_REPLICATES,
                    seed: int = 0) -> dict[str, float]:
    """Scenario -> share of replicates whose suppression interval contains 0 (the null) or
    excludes it (each alternative)."""
    delta_1, n = np.asarray(delta_1, float), np.asarray(n, float)
    sigma = np.broadcast_to(np.asarray(sigma, float), delta_1.shape)
    base = math.log(k) if np.ndim(k) == 0 else np.log(np.asarray(k, float))
    dilution = np.log((n + s - 1) / n)
    rng = np.random.default_rng(seed)
    out = {}
    for scenario in (NULL, *ALTERNATIVES):
        rise = scenario_shift(scenario, dilution, s - 1)
        accepted = 0
        for _ in range(n_rep):
            first = base + delta_1 - np.log(n) + sigma * rng.standard_normal(delta_1.shape)
            last = (base + delta_1 + rise - np.log(n + s - 1)
                    + sigma * rng.standard_normal(delta_1.shape))
            split = pooled_split(expit(first), expit(last), n, s, cluster,
                                 n_boot=SPLIT_N_BOOT, seed=int(rng.integers(2**31)))
            _, low, high = split["suppression"]
            accepted += int(low <= 0.0 <= high)
        out[scenario] = accepted / n_rep if scenario == NULL else 1.0 - accepted / n_rep
    return out
