"""Backends: one module per way of running a model (see base.py for the protocol).

A backend module exports `load(path, name, revision, dtype, device, self_test=True)`
returning a Backend. Adding a backend is one file plus one line in BACKENDS; modules are
imported only when their backend is loaded, so `rsp-probe --help` never imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from rsp_probe.errors import UsageError

BACKENDS: dict[str, str] = {
    "transformer-lens": "rsp_probe.backends.transformer_lens",
}


def register_backend(name: str, module: str, overwrite: bool = False) -> None:
    """Make `load_model(..., backend=name)` import `module` and call its `load`."""
    if name in BACKENDS and not overwrite:
        raise ValueError(f"backend {name!r} is already registered")
    BACKENDS[name] = module


def list_backends() -> list[str]:
    return sorted(BACKENDS)


def backend_loader(name: str) -> Callable:
    if name not in BACKENDS:
        raise UsageError(f"--backend must be one of {', '.join(list_backends())}; got {name}")
    return import_module(BACKENDS[name]).load
