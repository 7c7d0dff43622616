"""The registries: experiments, RSP laws and backends, each a table of name -> declaration,
and the plugins that fill them.

    from rsp_probe.registry import EXPERIMENTS
    EXPERIMENTS.names()            # ['entropy', 'attention', ...], built-ins first
    EXPERIMENTS.get("entropy")     # the declaration, or UsageError naming the registered ones

A registry's built-ins are modules named here (pytest lists its default plugins the same way);
they are imported when the registry is first read, and register what they declare. Other
packages bring theirs through one entry-point group, PLUGIN_GROUP: each entry point names a
module that registers its experiments, laws or backends when imported.

    [project.entry-points."rsp_probe.plugins"]
    my_plugin = "my_package.rsp_plugin"

The CLI, the Python API, the figures, the claims and reproduce all read these registries, so
this module sits at the bottom of the house: it imports nothing of rsp_probe but errors, and
the entries it holds are whatever the layers above declare (duck-typed, never imported here).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from importlib import import_module, metadata
from typing import Any, Generic, TypeVar

from rsp_probe.errors import UsageError

PLUGIN_GROUP = "rsp_probe.plugins"

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> declaration, with built-ins imported on first read, then the plugins."""

    def __init__(self, kind: str, builtins: tuple[str, ...]):
        self.kind = kind  # "experiment", "law", "backend": the word in error messages
        self.builtins = builtins  # modules that register the built-in entries
        self._entries: dict[str, T] = {}
        self._ranks: dict[str, int] = {}  # name -> its built-in module's place, else last
        self._loaded = False

    def register(self, name: str, entry: T, overwrite: bool = False) -> T:
        if name in self._entries and not overwrite:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        self._ranks[name] = self._registering_builtin()
        return entry

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)
        self._ranks.pop(name, None)

    def _registering_builtin(self) -> int:
        """The place in `builtins` of the built-in module being imported while an entry
        registers (found up the call stack), else len(builtins): a plugin's or a test's.
        The order of the entries is then the declared one, whichever module was imported
        first (a test importing rsp_probe.experiments.dose, say)."""
        frame = sys._getframe(2)
        while frame is not None:
            name = frame.f_globals.get("__name__", "")
            for index, module in enumerate(self.builtins):
                if name == module or name.startswith(module + "."):
                    return index
            frame = frame.f_back
        return len(self.builtins)

    def _load_builtins(self) -> None:
        if not self._loaded:
            self._loaded = True  # before importing: the modules register into this registry
            for module in self.builtins:
                import_module(module)

    def _load(self) -> None:
        self._load_builtins()
        load_plugins()

    def entries(self) -> dict[str, T]:
        """Every registered entry by name: the built-ins in their modules' order, then the
        others in registration order."""
        self._load()
        order = list(self._entries)
        return {name: self._entries[name] for name in
                sorted(order, key=lambda name: (self._ranks[name], order.index(name)))}

    def names(self) -> list[str]:
        return list(self.entries())

    def get(self, name: str) -> T:
        entries = self.entries()
        if name not in entries:
            raise UsageError(f"unknown {self.kind} {name!r}; registered: {', '.join(entries)}")
        return entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self.entries()

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries())

    def choices(self, fixed: dict[str, str] | None = None) -> Choices:
        """The names an option accepts: `fixed` ones (name -> help, e.g. "auto"), then every
        registered one, read when argparse or validation asks (never at import), so a
        plugin's entry is a valid value and --help lists it."""
        return Choices(self, dict(fixed or {}))


class Choices(Sequence):
    """An option's `choices` that a registry fills, looked up on every read."""

    def __init__(self, registry: Registry, fixed: dict[str, str]):
        self.registry, self.fixed = registry, fixed

    def _names(self) -> tuple[str, ...]:
        return (*self.fixed, *(n for n in self.registry.names() if n not in self.fixed))

    def __getitem__(self, index):
        return self._names()[index]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __contains__(self, name: object) -> bool:
        return name in self.fixed or name in self.registry

    def __repr__(self) -> str:
        return repr(self._names())

    def helps(self) -> dict[str, str]:
        """name -> its one-line help: the registered entries' (empty when one has none),
        then the fixed choices'."""
        registered = {name: getattr(entry, "help", "") for name, entry in
                      self.registry.entries().items()}
        return {**registered, **self.fixed}


_PLUGINS_LOADED: list[str] = []  # the plugin modules imported so far, by entry-point name
_plugins_started = False


def load_plugins() -> list[str]:
    """Import every module of the PLUGIN_GROUP entry points once; each registers its entries.
    A plugin that fails to import is a UsageError naming it, not a silent omission."""
    global _plugins_started
    if _plugins_started:
        return list(_PLUGINS_LOADED)
    _plugins_started = True
    for point in sorted(metadata.entry_points(group=PLUGIN_GROUP), key=lambda p: p.name):
        try:
            point.load()
        except Exception as error:  # any failure of third-party code: name the plugin
            raise UsageError(f"the rsp-probe plugin {point.name!r} ({point.value}) failed to "
                             f"load: {type(error).__name__}: {error}") from error
        _PLUGINS_LOADED.append(point.name)
    return list(_PLUGINS_LOADED)


def resolve(ref: Any) -> Any:
    """An object, or "module:attribute" imported now (declarations name heavy code by string,
    so that listing what is registered, as --help does, imports no torch)."""
    if not isinstance(ref, str):
        return ref
    module, _, attribute = ref.partition(":")
    if not attribute:
        raise ValueError(f"{ref!r}: expected 'module:attribute'")
    return getattr(import_module(module), attribute)


def reproduce_plan() -> tuple[tuple[str, str, dict], ...]:
    """`rsp-probe reproduce`'s plan, (run name, command, options) per run: every registered
    experiment's declared runs, in registry order. The run names are what the claims and the
    figures know the evidence by."""
    plan = tuple((name, command, dict(options))
                 for command, experiment in EXPERIMENTS.entries().items()
                 for name, options in experiment.reproduce)
    names = [name for name, _, _ in plan]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise ValueError(f"two experiments declare the reproduce run(s) {', '.join(duplicated)}")
    return plan


EXPERIMENTS: Registry[Any] = Registry("experiment", tuple(
    f"rsp_probe.experiments.{name}" for name in (
        "entropy", "attention", "influence", "branching", "passk", "knockout", "dose",
        "compare_prompts", "train_rl")))
BACKENDS: Registry[Any] = Registry("backend", ("rsp_probe.backends",))
LAWS: Registry[Any] = Registry("law", ("rsp_probe.laws",))
