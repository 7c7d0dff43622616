"""Backends: one module per way of running a model (see base.py for the protocol).

A backend module exports `load(path, name, revision, dtype, device, self_test=True)`
returning a Backend. Adding a backend is one file plus one line in BACKENDS; modules are
imported only when their backend is loaded, so `rsp-probe --help` never imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib import import_module

from rsp_probe.errors import UsageError

BACKENDS: dict[str, str] = {
    "transformer-lens": "rsp_probe.backends.transformer_lens",
    "hf": "rsp_probe.backends.hf",
}
AUTO = "auto"  # the fast backend when it delivers every needed feature, else the bridge
FAST, FALLBACK = "hf", "transformer-lens"


def register_backend(name: str, module: str, overwrite: bool = False) -> None:
    """Make `load_model(..., backend=name)` import `module` and call its `load`."""
    if name in BACKENDS and not overwrite:
        raise ValueError(f"backend {name!r} is already registered")
    BACKENDS[name] = module


def list_backends() -> list[str]:
    return sorted(BACKENDS)


def backend_loader(name: str, needs: Iterable[str] = ()) -> Callable:
    """The `load` of backend `name`; for AUTO, see `auto_loader`."""
    if name == AUTO:
        return auto_loader(needs)
    if name not in BACKENDS:
        raise UsageError(f"--backend must be one of {AUTO}, {', '.join(list_backends())}; "
                         f"got {name}")
    return import_module(BACKENDS[name]).load


def auto_loader(needs: Iterable[str] = ()) -> Callable:
    """Load with the fast backend when it supports every needed site or feature (see
    base.FEATURES) and accepts the model (its self-test checks that the model's attention
    goes through transformers' registry); otherwise with the TransformerLens bridge."""
    fast = import_module(BACKENDS[FAST])
    if not set(needs) <= fast.SUPPORTED:
        return backend_loader(FALLBACK)

    def load(*args, **kwargs):
        try:
            return fast.load(*args, **kwargs)
        except fast.UnsupportedModelError:
            return backend_loader(FALLBACK)(*args, **kwargs)

    return load
