"""`rsp-probe passk`: Pass@k per condition (temp, rsp+temp, greedy+rsp, greedy) on the same
problems, with bootstrap CIs and paired differences."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rsp_probe.analysis.tables import PASSK_FILE
from rsp_probe.config import _opt, config_value, pass_k_option
from rsp_probe.experiments.base import Experiment, register_experiment
from rsp_probe.experiments.common import named_conditions
from rsp_probe.experiments.plan_sizes import PASSK
from rsp_probe.probes.base import LOGIT_ONLY_PROBES

if TYPE_CHECKING:
    import pandas as pd

    from rsp_probe.backends.base import Backend
    from rsp_probe.experiments.common import Spec
    from rsp_probe.runs import Run


@dataclass(frozen=True)
class PasskOptions:
    conditions: tuple[str, ...] = _opt(("temp", "rsp+temp", "greedy+rsp", "greedy"),
                                       "comma-separated conditions")
    pass_k: tuple[int, ...] = pass_k_option((1, 2, 4, 8))


def passk_file(run: Run) -> dict:
    from rsp_probe.analysis.passk import passk_table

    return {PASSK_FILE: passk_table(run, tuple(config_value(run.config, "pass_k")))}


def run_passk(spec: Spec, model: Backend | None = None) -> tuple[Run, pd.DataFrame]:
    from rsp_probe.experiments.sampling import sample_and_write

    conditions = named_conditions(tuple(spec.option("conditions")), spec)

    run = sample_and_write(spec, model, conditions, derived=passk_file)
    return run, passk_summary(run)


def passk_summary(run: Run) -> pd.DataFrame:
    return run.table(PASSK_FILE)


# Modest defaults so that `rsp-probe passk` and `rsp_probe.passk()` finish in minutes on a
# CPU; the figures' sizes are set in experiments/reproduce.py.
EXPERIMENT = register_experiment(Experiment(
    name="passk", help="Pass@k per condition (temp, rsp+temp, greedy+rsp, greedy) with paired "
    "CIs", run=run_passk, options=PasskOptions,
    describe="rsp_probe.analysis.summaries:describe_passk",
    defaults={"samples": 8, "temperature": 1.0}, figures=("passk", "ablations", "mechanism"),
    probes=LOGIT_ONLY_PROBES, claims=("rsp_probe.claims.outcomes",),
    reproduce=(("passk", dict(PASSK, rsp_tokens=(16,))),
               ("passk-k4", dict(PASSK, rsp_tokens=(4,)))),
    derive=passk_file, summarize=passk_summary))
