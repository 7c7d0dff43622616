"""rsp-probe: mechanistic probes for Random Soft Prompts (RSPs).

    import rsp_probe
    run, table = rsp_probe.entropy(n_prompts=8, rsp_tokens=(0, 4, 16))

The public names load their modules on first use, so `import rsp_probe` (and the CLI's
`--help`) never pays for torch or transformer_lens.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "entropy": "rsp_probe.experiments.entropy",
    "attention": "rsp_probe.experiments.attention",
    "influence": "rsp_probe.experiments.influence",
    "branching": "rsp_probe.experiments.branching",
    "passk": "rsp_probe.experiments.passk",
    "load_model": "rsp_probe.models",
    "fit_law": "rsp_probe.rsp",
    "draw_rsp": "rsp_probe.rsp",
    "pass_at_k": "rsp_probe.tasks.passk",
    "check_answer": "rsp_probe.tasks.grading",
    "open_run": "rsp_probe.runs",
    "find_runs": "rsp_probe.runs",
    "describe": "rsp_probe.analysis.summaries",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'rsp_probe' has no attribute {name!r}")
