"""rsp-probe: mechanistic probes for Random Soft Prompts (RSPs).

    import rsp_probe
    run, table = rsp_probe.entropy(n_prompts=8, rsp_tokens=(0, 4, 16))

Each experiment is a function with the options of its command (`help(rsp_probe.passk)`,
`inspect.signature(rsp_probe.passk)`), generated from the same option tables (rsp_probe.api).
The public names load their modules on first use, so `import rsp_probe` (and the CLI's
`--help`) never pays for torch or transformer_lens.
"""

from importlib import import_module

from rsp_probe._version import __version__ as __version__

# every registered experiment is a public function too (rsp_probe.experiments.base)
_EXPORTS = {
    "load_model": "rsp_probe.models",
    "fit_law": "rsp_probe.rsp",
    "draw_rsp": "rsp_probe.rsp",
    "pass_at_k": "rsp_probe.analysis.pass_at_k",
    "check_answer": "rsp_probe.tasks.grading",
    "open_run": "rsp_probe.runs",
    "find_runs": "rsp_probe.runs",
    "describe": "rsp_probe.analysis.summaries",
}

_API: dict = {}  # experiment name -> its generated function, made once


def _experiments() -> dict:
    return import_module("rsp_probe.registry").EXPERIMENTS.entries()


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    if name == "__all__":  # the registered experiments, plugins' included, are public too
        return sorted([*_EXPORTS, *(name.replace("-", "_") for name in _experiments())])
    if not name.startswith("_"):
        experiments = _experiments()
        name = name if name in experiments else name.replace("_", "-")  # compare_prompts
        if name in experiments:
            if name not in _API or _API[name].experiment is not experiments[name]:
                _API[name] = import_module("rsp_probe.api").api_function(experiments[name])
            return _API[name]
    raise AttributeError(f"module 'rsp_probe' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__getattr__("__all__")})
