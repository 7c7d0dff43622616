"""`rsp-probe branching`: N trajectories per prompt and condition (greedy+rsp, temp,
temp+rsp), their prefix trees, first divergences and branch points, and for sampled
conditions the exact pairwise agreement probability sum_v p_a p_b along each pair's shared
prefix (rsp_probe.probes.pair_overlap, written to PAIR_OVERLAP_FILE)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rsp_probe.analysis.tables import BRANCHING_FILE
from rsp_probe.config import _opt
from rsp_probe.experiments.base import Experiment, register_experiment
from rsp_probe.experiments.common import named_conditions
from rsp_probe.experiments.plan_sizes import SAMPLED
from rsp_probe.probes.base import DEFAULT_PROBES

if TYPE_CHECKING:
    import pandas as pd

    from rsp_probe.backends.base import Backend
    from rsp_probe.experiments.common import Session, Spec
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

    conditions = named_conditions(tuple(spec.option("conditions")), spec)
    run = sample_and_write(spec, model, conditions, derived=branching_file,
                           measured=pair_overlap_files)
    return run, branching_table(run)


PAIR_COLUMNS = ("prompt_id", "condition", "a", "b", "step", "overlap")


def pair_overlap_table(model: Backend, trajectories: pd.DataFrame, vectors: dict,
                       top_p: float = 1.0) -> pd.DataFrame:
    """sum_v p_a p_b per pair of trajectories of each (prompt, sampled condition) at every
    step 1..together (the pair's last shared step); greedy conditions are left out."""
    import numpy as np
    import pandas as pd

    from rsp_probe.analysis.divergence import trajectory_pairs
    from rsp_probe.probes.pair_overlap import pair_overlaps

    sampled = trajectories[trajectories["temperature"].fillna(0) > 0]
    records = sampled.set_index("id", drop=False).to_dict("index")
    rows = []
    for condition, traj in sampled.groupby("condition", sort=True):
        pairs = trajectory_pairs(traj)
        values = pair_overlaps(model, records, vectors,
                               [(p.a, p.b, p.together) for p in pairs], top_p)
        rows += [pd.DataFrame({"prompt_id": pair.prompt_id, "condition": condition,
                               "a": pair.a, "b": pair.b, "step": np.arange(1, pair.together + 1),
                               "overlap": overlap}) for pair, overlap in zip(pairs, values)]
    if not rows:
        return pd.DataFrame({column: [] for column in PAIR_COLUMNS})
    return pd.concat(rows, ignore_index=True)[list(PAIR_COLUMNS)]


def pair_overlap_files(session: Session) -> dict:
    """The model-side derived file of a branching run, from the staged run: the exact
    pairwise agreement probabilities (docs/theory.md, 4.2)."""
    from rsp_probe.analysis.tables import PAIR_OVERLAP_FILE
    from rsp_probe.registry import LAWS

    if not LAWS.get(session.spec.rsp.law).attends_to_slots():
        return {}  # no RSP slots to teacher-force through: the bound is all there is
    run = session.writer.staged_run()
    return {PAIR_OVERLAP_FILE: pair_overlap_table(session.model, run.trajectories,
                                                  run.rsp_vectors(),
                                                  float(session.spec.sampling.top_p))}


def branching_table(run: Run) -> pd.DataFrame:
    return run.table(BRANCHING_FILE)


EXPERIMENT = register_experiment(Experiment(
    name="branching", help="prefix trees of N trajectories per prompt: where greedy+rsp, temp "
    "and temp+rsp branch", run=run_branching, options=BranchingOptions,
    describe="rsp_probe.analysis.summaries:describe_branching",
    defaults={"samples": 8, "temperature": 1.0}, figures=("branching", "branching_tree"),
    probes=DEFAULT_PROBES, claims=("rsp_probe.claims.outcomes", "rsp_probe.claims.theory"),
    reproduce=(("branching", dict(SAMPLED, rsp_tokens=(16,))),
               ("branching-k4", dict(SAMPLED, rsp_tokens=(4,)))),
    derive=branching_file,
    summarize=branching_table,
    theory="rsp_probe.analysis.theory_report:branching_section"))
