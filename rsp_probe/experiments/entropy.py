"""`rsp-probe entropy`: next-token entropy of the baseline (k=0) against RSPs of several k,
sampled at the same temperature on the same prompts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rsp_probe.experiments.base import Experiment, register_experiment
from rsp_probe.experiments.common import conditions_by_k

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
    figures=("entropy", "ablations"), summarize="rsp_probe.analysis.summaries:entropy_summary"))
