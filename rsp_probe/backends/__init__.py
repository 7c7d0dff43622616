"""Backends: one module per way of running a model (base.py: the Backend protocol).

A backend is an entry of rsp_probe.registry.BACKENDS: a light declaration (its name, the path
of its module, a one-line help) registered here for the built-ins, and by a plugin's module
(the `rsp_probe.plugins` entry-point group) for others:

    from rsp_probe.backends import register_backend
    register_backend("my-backend", "my_package.my_backend", help="what it runs the model with")

The module exports `load(path, name, revision, dtype, device, self_test=True, **options)`
returning a Backend; it is imported only when its backend is loaded, so listing backends (the
CLI's --backend choices, `rsp-probe --help`) never imports torch. The CLI and the Python API
accept "auto" and every registered name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import import_module

from rsp_probe.errors import UsageError
from rsp_probe.registry import BACKENDS

AUTO = "auto"  # the fast backend when it delivers every needed feature, else the bridge
FAST, FALLBACK = "hf", "transformer-lens"


@dataclass(frozen=True)
class BackendDeclaration:
    """A registered backend: `module` exports its `load`, imported on first use."""

    name: str
    module: str
    help: str = ""

    def loader(self) -> Callable:
        return import_module(self.module).load


def register_backend(name: str, module: str, overwrite: bool = False, help: str = "") -> None:
    """Make `load_model(..., backend=name)` and `--backend name` import `module` and call its
    `load`."""
    if name == AUTO:
        raise ValueError(f"backend name {AUTO!r} is reserved: it picks {FAST} or {FALLBACK}")
    BACKENDS.register(name, BackendDeclaration(name, module, help), overwrite=overwrite)


def list_backends() -> list[str]:
    """The registered backends' names (built-ins and plugins'), sorted; AUTO is not one."""
    return sorted(BACKENDS.names())


def backend_loader(name: str, needs: Iterable[str] = ()) -> Callable:
    """The `load` of backend `name`; for AUTO, see `auto_loader`."""
    if name == AUTO:
        return auto_loader(needs)
    if name not in BACKENDS:
        raise UsageError(f"--backend must be one of {AUTO}, {', '.join(list_backends())}; "
                         f"got {name}")
    return BACKENDS.get(name).loader()


def auto_loader(needs: Iterable[str] = ()) -> Callable:
    """Load with the fast backend when it supports every needed site or feature (see
    base.FEATURES) and accepts the model (its self-test checks that the model's attention
    goes through transformers' registry); otherwise with the TransformerLens bridge."""
    fast = import_module(BACKENDS.get(FAST).module)
    if not set(needs) <= fast.SUPPORTED:
        return backend_loader(FALLBACK)

    def load(*args, **kwargs):
        try:
            return fast.load(*args, **kwargs)
        except fast.UnsupportedModelError:
            return backend_loader(FALLBACK)(*args, **kwargs)

    return load


register_backend(FAST, "rsp_probe.backends.hf",
                 help="the Hugging Face model with sdpa (fast)")
register_backend(FALLBACK, "rsp_probe.backends.transformer_lens",
                 help="the TransformerBridge")
