"""Pure numpy/scipy theory of RSP dilution and branching (never imports torch).

See docs/theory.md for the derivations. Steps ``t`` are 1-based: step 1 produces the first
generated token; masses are fractions of one query's attention.
"""

from rsp_probe.theory.branching import (
    DivergencePMF,
    collision_hazard,
    collision_hazard_from_logits,
    distribution_distance,
    divergence_counts,
    first_divergence_pmf,
    pair_overlap,
    simulated_tv_null,
)
from rsp_probe.theory.budget import (
    dilution_part,
    dilution_share,
    group_advantage,
    logit_decomposition,
    pooled_split,
    rsp_advantage,
)
from rsp_probe.theory.dilution import (
    dilution_mass,
    envelope,
    exponential,
    invert_delta,
    power_law,
    sink_mass,
)
from rsp_probe.theory.exponent import ExponentTest, excess_exponent, exponent_test
from rsp_probe.theory.fit import (
    CurveFit,
    compare_models,
    fit_dilution,
    fit_exponential,
    fit_power_law,
    fit_sink,
)
from rsp_probe.theory.greedy import GreedyFit, fit_greedy_c, greedy_hazard
from rsp_probe.theory.scaling import SlopeEstimate, loglog_slope

__all__ = [
    "CurveFit",
    "DivergencePMF",
    "ExponentTest",
    "GreedyFit",
    "SlopeEstimate",
    "collision_hazard",
    "collision_hazard_from_logits",
    "compare_models",
    "dilution_mass",
    "dilution_part",
    "dilution_share",
    "distribution_distance",
    "divergence_counts",
    "envelope",
    "excess_exponent",
    "exponent_test",
    "exponential",
    "first_divergence_pmf",
    "fit_dilution",
    "fit_exponential",
    "fit_greedy_c",
    "fit_power_law",
    "fit_sink",
    "greedy_hazard",
    "invert_delta",
    "group_advantage",
    "logit_decomposition",
    "loglog_slope",
    "pair_overlap",
    "pooled_split",
    "power_law",
    "rsp_advantage",
    "simulated_tv_null",
    "sink_mass",
]
