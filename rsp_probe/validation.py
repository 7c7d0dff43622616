"""The type and choice checks of every option, shared by the command line and the Python
API: argparse checks what the command line gives, this checks what a Python caller gives,
with argparse's own one-line messages, as a UsageError, before any model is loaded.

Ranges (k >= 0, 0 < top_p <= 1, ...) are checked after this, for both, by
config.check_ranges."""

from __future__ import annotations

import dataclasses

from rsp_probe.errors import UsageError

# the annotation of a field (a string: the config modules use postponed annotations) ->
# (the argparse name of the type, a test of one value)
_SCALARS = {
    "int": ("int", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "float": ("float", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    "str": ("str", lambda v: isinstance(v, str)),
    "bool": ("bool", lambda v: isinstance(v, bool)),
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_value(field: dataclasses.Field, value) -> None:
    """UsageError in argparse's words when `value` is not what the CLI would accept."""
    annotation = str(field.type).replace(" ", "")
    optional = annotation.endswith("|None")
    base = annotation.removesuffix("|None")
    if optional and value is None:
        return
    if base.startswith("tuple[") and base.endswith(",...]"):
        kind, test = _SCALARS[base[len("tuple["):-len(",...]")]]
        ok = isinstance(value, (tuple, list)) and all(test(item) for item in value)
        if not ok:
            raise UsageError(f"argument {_flag(field.name)}: expected a list of {kind}, got "
                             f"{value!r}")
        return
    if base in _SCALARS:
        kind, test = _SCALARS[base]
        if not test(value):
            raise UsageError(f"argument {_flag(field.name)}: invalid {kind} value: {value!r}")
    choices = field.metadata.get("choices")
    if choices is not None and value not in choices:
        raise UsageError(f"argument {_flag(field.name)}: invalid choice: {value!r} (choose "
                         f"from {', '.join(map(repr, choices))})")


def check_piece(piece) -> None:
    """Every field of a frozen config dataclass instance."""
    for field in dataclasses.fields(piece):
        check_value(field, getattr(piece, field.name))


def check_options(options_class, values: dict) -> None:
    """An experiment's own options, given as {name: value}."""
    fields = {f.name: f for f in dataclasses.fields(options_class)}
    for name, value in values.items():
        if name in fields:
            check_value(fields[name], value)
