"""`rsp-probe` command line. Heavy modules (torch, transformer_lens) are imported inside the
command that needs them, so `--help` stays instant."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable

from rsp_probe.config import DataConfig, ModelConfig, OutputConfig, RSPConfig, SamplingConfig
from rsp_probe.errors import UsageError

EXPERIMENT_PIECES = (ModelConfig, DataConfig, RSPConfig, SamplingConfig, OutputConfig)


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments give one line on stderr and exit code 2 (argparse prints the usage too)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")


def add_options(parser: argparse.ArgumentParser, piece, defaults: dict | None = None) -> None:
    """One --flag per dataclass field; its `help` metadata becomes the --help text."""
    group = parser.add_argument_group(piece.__name__.removesuffix("Config").lower())
    for field in dataclasses.fields(piece):
        flags = ["--" + field.name.replace("_", "-"), *ALIASES.get(field.name, ())]
        default = (defaults or {}).get(field.name, field.default)
        kwargs = {"default": default, "help": field.metadata.get("help", "") + " (%(default)s)"}
        if field.type in ("bool", bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif field.name == "rsp_tokens":
            kwargs["type"] = int_list
        else:
            kwargs["type"] = {"int": int, "float": float}.get(str(field.type), str)
            if "choices" in field.metadata:
                kwargs["choices"] = field.metadata["choices"]
        group.add_argument(*flags, dest=field.name, **kwargs)


ALIASES = {"samples": ("--n",)}  # the Pass@N literature calls samples per problem n


def name_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def options_of(args: argparse.Namespace, pieces=EXPERIMENT_PIECES) -> dict:
    names = {f.name for piece in pieces for f in dataclasses.fields(piece)}
    return {name: value for name, value in vars(args).items() if name in names}


# -- commands ---------------------------------------------------------------------------------

def experiment(module: str, function: str, extra: tuple[str, ...] = ()) -> Callable:
    """A command that builds a Spec, runs rsp_probe.experiments.<module>.<function>, prints
    the run's summary (the same text `rsp-probe show` prints later)."""

    def handler(args) -> int:
        import importlib

        from rsp_probe.analysis.summaries import describe
        from rsp_probe.experiments.common import build_spec

        run_fn = getattr(importlib.import_module(f"rsp_probe.experiments.{module}"), function)
        spec = build_spec(args.command, extra={name: getattr(args, name) for name in extra},
                          **options_of(args))
        run, _ = run_fn(spec)
        print(describe(run))
        print(f"\nrun written to {run.path}", file=sys.stderr)
        return 0

    return handler


def cmd_show(args) -> int:
    from rsp_probe.analysis.summaries import describe
    from rsp_probe.runs import open_run

    for path in args.runs:
        print(describe(open_run(path)))
    return 0


COMMANDS: dict[str, tuple[str, Callable, dict]] = {
    "entropy": ("next-token entropy, baseline (k=0) against RSPs of several k",
                experiment("entropy", "run_entropy"), {}),
    "attention": ("attention mass on the RSP positions per layer and head, with dilution fits",
                  experiment("attention", "run_attention"), {"rsp_tokens": (4, 16)}),
    "influence": ("teacher-forced KL / TV / entropy shift of RSP draws along the greedy baseline",
                  experiment("influence", "run_influence"),
                  {"rsp_tokens": (4, 16), "samples": 8, "temperature": 0.0}),
    "branching": ("prefix trees of N trajectories per prompt: where greedy+rsp, temp and "
                  "temp+rsp branch", experiment("branching", "run_branching", ("conditions",)),
                  {"samples": 8, "temperature": 1.0}),
    "passk": ("Pass@k per condition (temp, rsp+temp, greedy+rsp, greedy) with paired CIs",
              experiment("passk", "run_passk", ("conditions", "k")),
              {"samples": 32, "temperature": 1.0, "n_prompts": 50}),
}

# Command-specific options beyond the shared config pieces: flag -> argparse kwargs.
EXTRA_OPTIONS = {
    "branching": {"--conditions": dict(type=name_list, default=("greedy+rsp", "temp", "temp+rsp"),
                                       help="comma-separated conditions (%(default)s)")},
    "passk": {"--conditions": dict(type=name_list,
                                   default=("temp", "rsp+temp", "greedy+rsp", "greedy"),
                                   help="comma-separated conditions (%(default)s)"),
              "--k": dict(type=int_list, default=(1, 2, 4, 8, 16, 32),
                          help="k values of Pass@k, each <= --n (%(default)s)")},
}


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="rsp-probe", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for name, (summary, handler, defaults) in COMMANDS.items():
        command = sub.add_parser(name, help=summary, description=summary)
        for piece in EXPERIMENT_PIECES:
            add_options(command, piece, defaults)
        for flag, kwargs in EXTRA_OPTIONS.get(name, {}).items():
            command.add_argument(flag, **kwargs)
        command.set_defaults(handler=handler)
    show = sub.add_parser("show", help="print a run's summary again, without a model")
    show.add_argument("runs", nargs="+", help="run directories")
    show.set_defaults(handler=cmd_show)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as err:
        print(f"rsp-probe {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rsp-probe {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
