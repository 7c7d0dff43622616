"""`rsp-probe branching`: N trajectories per prompt and condition (greedy+rsp, temp,
temp+rsp), their prefix trees, first divergences and branch points, and for sampled
conditions the exact pairwise agreement probability sum_v p_a p_b along each pair's shared
prefix (rsp_probe.probes.pair_overlap, written to PAIR_OVERLAP_FILE)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rsp_probe.config import _opt
from rsp_probe.experiments.base import Experiment, register_experiment
from rsp_probe.experiments.common import named_conditions
from rsp_probe.runs import BRANCHING_FILE

if TYPE_CHECKING:
    import pandas as pd

    from rsp_probe.backends.base import Backend
    from rsp_probe.experiments.common import Spec
    from rsp_probe.runs import Run


@dataclass(frozen=True)
class BranchingOptions:
    conditions: tuple[str, ...] = _opt(("greedy+rsp", "temp", "temp+rsp"),
                                       "comma-separated conditions")


def branching_file(run: Run) -> dict:
    from rsp_probe.analysis.branching import branching_frame

    return {BRANCHING_FILE: branching_frame(run)}


def run_branching(spec: Spec, model: Backend | None = None) -> tuple[Run, pd.DataFrame]:
    from rsp_probe.experiments.sampling import sample_and_write
    from rsp_probe.probes.pair_overlap import pair_overlap_files

    conditions = named_conditions(tuple(spec.option("conditions")), spec)
    run = sample_and_write(spec, model, conditions, derived=branching_file,
                           measured=pair_overlap_files)
    return run, branching_table(run)


def branching_table(run: Run) -> pd.DataFrame:
    return run.table(BRANCHING_FILE)


EXPERIMENT = register_experiment(Experiment(
    name="branching", help="prefix trees of N trajectories per prompt: where greedy+rsp, temp "
    "and temp+rsp branch", run=run_branching, options=BranchingOptions,
    describe="rsp_probe.analysis.summaries:describe_branching",
    defaults={"samples": 8, "temperature": 1.0}, figures=("branching",), derive=branching_file,
    summarize=branching_table,
    theory="rsp_probe.analysis.theory_report:branching_section"))
