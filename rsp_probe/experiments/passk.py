"""`rsp-probe passk`: Pass@k per condition (temp, rsp+temp, greedy+rsp, greedy) on the same
problems, with bootstrap CIs and paired differences."""

from __future__ import annotations

from rsp_probe.errors import UsageError
from rsp_probe.experiments.common import build_spec, named_conditions
from rsp_probe.experiments.sampling import sample_and_write
from rsp_probe.probes.base import LOGIT_ONLY_PROBES

DEFAULT_CONDITIONS = ("temp", "rsp+temp", "greedy+rsp", "greedy")
DEFAULT_KS = (1, 2, 4, 8, 16, 32)


def run_passk(spec, model=None):
    from rsp_probe.analysis.passk import PASSK_FILE, passk_table

    conditions = named_conditions(tuple(spec.option("conditions")), spec)
    ks = tuple(spec.option("k"))
    if not ks or min(ks) < 1 or max(ks) > spec.sampling.samples:
        raise UsageError(f"--k values must be between 1 and --samples ({spec.sampling.samples})"
                         f", got {list(ks)}")
    def table(writer):
        writer.write_table(PASSK_FILE, passk_table(writer.staged_run(), ks))

    run = sample_and_write(spec, model, conditions, derived=table,
                           probes=LOGIT_ONLY_PROBES)
    return run, run.table(PASSK_FILE)


def passk(model=None, conditions=DEFAULT_CONDITIONS, k=DEFAULT_KS, **options):
    """Python API: `rsp_probe.passk(n_prompts=50, samples=32, conditions=("temp", "rsp+temp"))`."""
    loaded = model if hasattr(model, "bridge") else None
    spec = build_spec("passk", extra={"conditions": tuple(conditions), "k": tuple(k)},
                      model=None if loaded else model, **options)
    return run_passk(spec, loaded)
