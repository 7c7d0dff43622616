"""`rsp-probe attention`: RSP attention mass per layer and head per step, the attention
budget over every key group (rsp_probe.probes.budget), and the dilution-law fits written to
dilution_fit.json."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rsp_probe.analysis.tables import DILUTION_FILE
from rsp_probe.config import Condition
from rsp_probe.errors import UsageError
from rsp_probe.experiments.base import Experiment, register_experiment
from rsp_probe.experiments.plan_sizes import MAIN
from rsp_probe.probes.base import DEFAULT_PROBES
from rsp_probe.probes.names import BUDGET_PROBE

if TYPE_CHECKING:
    import pandas as pd

    from rsp_probe.backends.base import Backend
    from rsp_probe.experiments.common import Spec
    from rsp_probe.runs import Run


def rsp_conditions(spec) -> list[Condition]:
    ks = sorted({k for k in spec.rsp.rsp_tokens if k > 0})
    if not ks:
        raise UsageError("attention needs at least one --rsp-tokens value above 0")
    return [Condition(f"k{k}", k, spec.sampling.temperature, spec.sampling.top_p) for k in ks]


def dilution_file(run: Run) -> dict:
    from rsp_probe.analysis.attention import dilution_fits

    return {DILUTION_FILE: dilution_fits(run)}


def run_attention(spec: Spec, model: Backend | None = None) -> tuple[Run, pd.DataFrame]:
    from rsp_probe.analysis.attention import layer_summary
    from rsp_probe.experiments.sampling import sample_and_write

    run = sample_and_write(spec, model, rsp_conditions(spec), derived=dilution_file)
    return run, layer_summary(run)


EXPERIMENT = register_experiment(Experiment(
    name="attention",
    help="attention mass on the RSP positions per layer and head, with dilution fits",
    run=run_attention, describe="rsp_probe.analysis.summaries:describe_attention",
    defaults={"rsp_tokens": (4, 16)}, figures=("attention", "ablations"),
    probes=(*DEFAULT_PROBES, BUDGET_PROBE),
    claims=("rsp_probe.claims.mechanism", "rsp_probe.claims.theory"),
    reproduce=(("attention", dict(MAIN, rsp_tokens=(4, 16), samples=2, temperature=0.7)),),
    derive=dilution_file,
    summarize="rsp_probe.analysis.attention:layer_summary",
    theory="rsp_probe.analysis.theory_report:dilution_section"))
