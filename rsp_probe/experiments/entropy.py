"""`rsp-probe entropy`: next-token entropy of the baseline (k=0) against RSPs of several k,
sampled at the same temperature on the same prompts."""

from __future__ import annotations

from rsp_probe.experiments.common import build_spec, conditions_by_k
from rsp_probe.experiments.sampling import sample_and_write


def run_entropy(spec, model=None):
    """Run, write the run directory, return (Run, summary DataFrame)."""
    from rsp_probe.analysis.summaries import entropy_summary

    run = sample_and_write(spec, model, conditions_by_k(spec))
    return run, entropy_summary(run)


def entropy(model=None, **options):
    """Python API: `rsp_probe.entropy(n_prompts=4, rsp_tokens=(0, 4, 16))`.

    `model` is a path, a Hub id, None (the embedded default) or a loaded model.
    """
    loaded = model if hasattr(model, "bridge") else None
    spec = build_spec("entropy", model=None if loaded else model, **options)
    return run_entropy(spec, loaded)
