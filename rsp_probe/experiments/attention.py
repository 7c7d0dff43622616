"""`rsp-probe attention`: RSP attention mass per layer and head per step, with the
dilution-law fits written to dilution_fit.json."""

from __future__ import annotations

from rsp_probe.config import Condition
from rsp_probe.errors import UsageError
from rsp_probe.experiments.common import build_spec
from rsp_probe.experiments.sampling import sample_and_write

DILUTION_FILE = "dilution_fit.json"


def rsp_conditions(spec) -> list[Condition]:
    ks = sorted({k for k in spec.rsp.rsp_tokens if k > 0})
    if not ks:
        raise UsageError("attention needs at least one --rsp-tokens value above 0")
    return [Condition(f"k{k}", k, spec.sampling.temperature, spec.sampling.top_p) for k in ks]


def run_attention(spec, model=None):
    from rsp_probe.analysis.attention import dilution_fits, layer_summary

    def fits(writer):
        writer.write_json(DILUTION_FILE, dilution_fits(writer.staged_run()))

    run = sample_and_write(spec, model, rsp_conditions(spec), derived=fits)
    return run, layer_summary(run)


def attention(model=None, **options):
    """Python API: `rsp_probe.attention(n_prompts=4, rsp_tokens=(4, 16))`."""
    loaded = model if hasattr(model, "bridge") else None
    spec = build_spec("attention", model=None if loaded else model, **options)
    return run_attention(spec, loaded)
