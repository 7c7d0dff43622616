"""`rsp-probe entropy`: next-token entropy of the baseline (k=0) against RSPs of several k,
sampled at the same temperature on the same prompts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rsp_probe.experiments.base import Experiment, register_experiment
from rsp_probe.experiments.common import conditions_by_k
from rsp_probe.experiments.plan_sizes import ABLATION_DOSES, MAIN
from rsp_probe.probes.base import DEFAULT_PROBES

if TYPE_CHECKING:
    import pandas as pd

    from rsp_probe.backends.base import Backend
    from rsp_probe.experiments.common import Spec
    from rsp_probe.runs import Run


def run_entropy(spec: Spec, model: Backend | None = None) -> tuple[Run, pd.DataFrame]:
    """Run, write the run directory, return (Run, summary DataFrame)."""
    from rsp_probe.analysis.summaries import entropy_summary
    from rsp_probe.experiments.sampling import sample_and_write

    run = sample_and_write(spec, model, conditions_by_k(spec))
    return run, entropy_summary(run)


EXPERIMENT = register_experiment(Experiment(
    name="entropy", help="next-token entropy, baseline (k=0) against RSPs of several k",
    run=run_entropy, describe="rsp_probe.analysis.summaries:describe_entropy",
    figures=("entropy", "ablations"),
    probes=DEFAULT_PROBES, claims=("rsp_probe.claims.mechanism", "rsp_probe.claims.outcomes"),
    reproduce=(
        ("entropy", dict(MAIN, rsp_tokens=(0, 4, 16), samples=4, temperature=0.7)),
        # the ablations: one factor away from the main entropy run each
        ("ablation-sigma0.5", dict(MAIN, rsp_tokens=ABLATION_DOSES, sigma_scale=0.5)),
        ("ablation-sigma2", dict(MAIN, rsp_tokens=ABLATION_DOSES, sigma_scale=2.0)),
        ("ablation-prefix", dict(MAIN, rsp_tokens=ABLATION_DOSES, placement="prefix")),
        ("ablation-per-dim", dict(MAIN, rsp_tokens=ABLATION_DOSES, law="per-dim")),
        ("ablation-tokens", dict(MAIN, rsp_tokens=ABLATION_DOSES, law="tokens")),
        ("ablation-fixed-draw", dict(MAIN, rsp_tokens=ABLATION_DOSES, fixed_draw=True))),
    summarize="rsp_probe.analysis.summaries:entropy_summary"))
