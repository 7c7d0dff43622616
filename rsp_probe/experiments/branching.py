"""`rsp-probe branching`: N trajectories per prompt and condition (greedy+rsp, temp,
temp+rsp), their prefix trees, first divergences and branch points."""

from __future__ import annotations

from rsp_probe.experiments.common import build_spec, named_conditions
from rsp_probe.experiments.sampling import sample_and_write

DEFAULT_CONDITIONS = ("greedy+rsp", "temp", "temp+rsp")


def run_branching(spec, model=None):
    from rsp_probe.analysis.branching import BRANCHING_FILE, branching_frame

    def tree(writer):
        writer.write_table(BRANCHING_FILE, branching_frame(writer.staged_run()))

    conditions = named_conditions(tuple(spec.option("conditions")), spec)
    run = sample_and_write(spec, model, conditions, derived=tree)
    return run, run.table(BRANCHING_FILE)


def branching(model=None, conditions=DEFAULT_CONDITIONS, **options):
    """Python API: `rsp_probe.branching(n_prompts=4, samples=8)`."""
    loaded = model if hasattr(model, "bridge") else None
    spec = build_spec("branching", extra={"conditions": tuple(conditions)},
                      model=None if loaded else model, **options)
    return run_branching(spec, loaded)
