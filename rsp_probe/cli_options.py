"""Option tables (config.py's frozen dataclasses) as argparse options, in one flag style.

Each field becomes `--field-name` (plus its `aliases`); its `help` metadata becomes the
--help line with the default as it is typed on a command line (`1,2,4`, never a tuple). A
bool is a plain flag (`--overwrite`; `--no-x` for a field that defaults to True). An old name
(`renamed_from`) is still accepted, with a one-line deprecation note. Every option records
the spelling the user typed, so an error message can name `--n` rather than `--samples`.
No heavy imports: `rsp-probe --help` reads this module.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys

TYPED = "_typed_flags"  # namespace attribute: {canonical flag: the spelling typed}


def int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}") from None


def name_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


LIST_TYPES = {"tuple[int, ...]": int_list, "tuple[str, ...]": name_list}
SCALAR_TYPES = {"int": int, "float": float}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def format_default(value) -> str | None:
    """A default as it is typed on the command line; None where no default is worth showing
    (None, and False for a plain flag)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value) if value else "none"
    return str(value)


def option_help(field: dataclasses.Field) -> str:
    """A field's `help` metadata, and where a registry fills its choices
    (rsp_probe.registry.Choices: --law, --backend) each choice's own line, read now (when
    --help or the API docstring is built), so a plugin's entries are described too."""
    text = field.metadata.get("help", "")
    helps = getattr(field.metadata.get("choices"), "helps", None)
    if helps is not None:
        lines = "; ".join(f"{name}: {line}" if line else name
                          for name, line in helps().items())
        text = f"{text}. {lines}" if text else lines
    return text


def help_text(text: str, default) -> str:
    """The help line with its default appended, unless the text already says it."""
    shown = format_default(default)
    if shown is not None and "default" not in text:
        text = f"{text} (default: {shown})"
    return text.replace("%", "%%")  # argparse %-formats help strings


def is_flag(field: dataclasses.Field) -> bool:
    return field.type in ("bool", bool)


class TableOption(argparse.Action):
    """Store the value, remember which spelling was typed, and note a renamed flag."""

    def __init__(self, option_strings, dest, renamed_to: str | None = None, canonical=None,
                 **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.renamed_to = renamed_to
        self.canonical = canonical or option_strings[0]

    def __call__(self, parser, namespace, values, option_string=None):
        if self.renamed_to is not None:
            print(f"rsp-probe: note: {option_string} is deprecated and will be removed; use "
                  f"{self.renamed_to}", file=sys.stderr)
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)
        typed = {**getattr(namespace, TYPED, {}), self.canonical: option_string}
        setattr(namespace, TYPED, typed)


def add_options(parser: argparse.ArgumentParser, piece, defaults: dict | None = None) -> None:
    """One option per field of the dataclass `piece`; `defaults` overrides field defaults."""
    title = piece.__name__.removesuffix("Config").removesuffix("Options").lower()
    group = parser.add_argument_group(title or "options")
    for field in dataclasses.fields(piece):
        default = (defaults or {}).get(field.name, field.default)
        main, kwargs = flag(field.name), {"default": default}
        if is_flag(field):
            main = flag(f"no_{field.name}") if default else main
            kwargs.update(nargs=0, const=not default)
        elif str(field.type) in LIST_TYPES:
            kwargs["type"] = LIST_TYPES[str(field.type)]
        else:
            kwargs["type"] = SCALAR_TYPES.get(str(field.type), str)
            if "choices" in field.metadata:
                kwargs["choices"] = field.metadata["choices"]
        group.add_argument(main, *field.metadata.get("aliases", ()), dest=field.name,
                           action=TableOption, help=help_text(option_help(field),
                                                              default), **kwargs)
        for old in field.metadata.get("renamed_from", ()):
            group.add_argument(flag(old), dest=field.name, action=TableOption, renamed_to=main,
                               canonical=main, help=argparse.SUPPRESS,
                               **{**kwargs, "default": argparse.SUPPRESS})


def options_of(args: argparse.Namespace, pieces) -> dict:
    """The parsed values of the fields of `pieces`."""
    names = {f.name for piece in pieces for f in dataclasses.fields(piece)}
    return {name: value for name, value in vars(args).items() if name in names}


def in_typed_words(message: str, args: argparse.Namespace) -> str:
    """`message` with each canonical flag replaced by the spelling the user typed."""
    for canonical, typed in getattr(args, TYPED, {}).items():
        if typed != canonical:
            message = re.sub(rf"(?<![\w-]){re.escape(canonical)}(?![\w-])", typed, message)
    return message
