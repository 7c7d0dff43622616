"""`rsp-probe` command line. Heavy modules (torch, transformer_lens) are imported inside the
command that needs them, so `--help` stays instant."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable

from rsp_probe.config import EXPERIMENT_PIECES, ModelConfig
from rsp_probe.errors import UsageError


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments give one line on stderr and exit code 2 (argparse prints the usage too)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}") from None


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


def cmd_figures(args) -> int:
    from rsp_probe.figures.render import render_all

    result = render_all(args.runs, args.out)
    for message in result["skipped"].values():
        print(message, file=sys.stderr)
    for name, paths in result["rendered"].items():
        print(f"{name}: {', '.join(str(p) for p in paths)}")
    print(f"manifest: {result['manifest']}")
    return 0


def cmd_theory(args) -> int:
    from rsp_probe.analysis.theory_report import replace_generated, theory_report
    from rsp_probe.runs import find_runs

    text = theory_report(find_runs(args.runs))
    print(text)
    if args.report:
        replace_generated(args.report, text)
        print(f"\nwritten into {args.report}", file=sys.stderr)
    return 0


def cmd_reproduce(args) -> int:
    from pathlib import Path

    from rsp_probe.analysis.theory_report import replace_generated, theory_report
    from rsp_probe.experiments.reproduce import RESULTS_FILE, results_text, run_plan
    from rsp_probe.figures.render import render_all

    out = Path(args.out)
    runs = run_plan(out, model_spec=args.model, quiet=args.quiet, overwrite=args.overwrite)
    figures = render_all([run.path for run in runs], args.figures)
    theory = theory_report(runs)
    results = results_text(runs)
    (out / RESULTS_FILE).write_text(f"# Results of `rsp-probe reproduce`\n\n{results}\n"
                                    f"## Theory comparison\n\n{theory}\n")
    if args.update_docs:
        replace_generated("docs/theory.md", theory)
        replace_generated("README.md", results, "<!-- BEGIN GENERATED RESULTS -->",
                          "<!-- END GENERATED RESULTS -->")
    for message in figures["skipped"].values():
        print(message, file=sys.stderr)
    print(f"runs in {out}, figures in {args.figures}, summary in {out / RESULTS_FILE}")
    return 0


def cmd_show(args) -> int:
    from rsp_probe.analysis.summaries import describe
    from rsp_probe.runs import open_run

    for path in args.runs:
        print(describe(open_run(path)))
    return 0


def cmd_train_toy(args) -> int:
    from dataclasses import replace
    from pathlib import Path

    from rsp_probe.models import load_model
    from rsp_probe.toy.card import measure_quality, write_card
    from rsp_probe.toy.train import QUICK, TrainConfig, train

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise UsageError(f"--out {out}: not empty (use --overwrite to replace a checkpoint)")
    config = replace(TrainConfig(), seed=args.seed, max_minutes=args.max_minutes,
                     stop_step=args.steps, init=args.init, **(QUICK if args.quick else {}))
    log = train(out, config, progress=not args.quiet and sys.stderr.isatty())
    model = load_model(str(out))  # the same path every command uses
    n_card = 16 if args.quick else args.card_problems
    results = measure_quality(model, n_prompts=n_card, quiet=args.quiet)
    n_params = sum(p.numel() for p in model.bridge.original_model.parameters())
    write_card(out, log, results, n_params, n_card)
    print((out / "README.md").read_text())
    return 0


def cmd_model_card(args) -> int:
    from rsp_probe.models import load_model
    from rsp_probe.toy.card import measure_quality, quality_table, targets

    model = load_model(args.model, dtype=args.dtype, device=args.device)
    results = measure_quality(model, n_prompts=args.n_prompts, seed=args.seed, quiet=args.quiet)
    print(f"# quality of {model.info.name} on {args.n_prompts} test problems, seed {args.seed}")
    print(quality_table(results))
    print("\n".join(targets(results)))
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
    train = sub.add_parser("train-toy", help="train the embedded default model on CPU")
    train.add_argument("--out", required=True, help="checkpoint directory to write")
    train.add_argument("--quick", action="store_true", help="a few steps, for tests")
    train.add_argument("--seed", type=int, default=0, help="training seed (%(default)s)")
    train.add_argument("--max-minutes", type=float, default=90.0,
                       help="training time budget (%(default)s)")
    train.add_argument("--steps", type=int, default=None,
                       help="stop after this many steps (reproduces a checkpoint exactly)")
    train.add_argument("--init", default=None,
                       help="checkpoint to continue training from (default: from scratch)")
    train.add_argument("--card-problems", type=int, default=200,
                       help="test problems measured for the model card (%(default)s)")
    train.add_argument("--overwrite", action="store_true", help="replace a checkpoint at --out")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=cmd_train_toy)
    card = sub.add_parser("model-card", help="re-measure the quality numbers of a model card")
    add_options(card, ModelConfig)
    card.add_argument("--n-prompts", type=int, default=200, help="test problems (%(default)s)")
    card.add_argument("--seed", type=int, default=1, help="sampling seed (%(default)s)")
    card.add_argument("--quiet", action="store_true", help="no progress output")
    card.set_defaults(handler=cmd_model_card)
    figures = sub.add_parser("figures", help="draw every mechanism figure from saved runs")
    figures.add_argument("--runs", nargs="+", required=True,
                         help="run directories, or folders holding runs")
    figures.add_argument("--out", default="figures", help="output folder (%(default)s)")
    figures.set_defaults(handler=cmd_figures)
    theory = sub.add_parser("theory", help="compare runs with the dilution and branching theory")
    theory.add_argument("runs", nargs="+", help="run directories, or folders holding runs")
    theory.add_argument("--report", help="Markdown file whose generated section to replace")
    theory.set_defaults(handler=cmd_theory)
    reproduce = sub.add_parser("reproduce", help="run every experiment of the figures on the "
                               "default model, then draw them")
    reproduce.add_argument("--out", default="runs/reproduce", help="runs folder (%(default)s)")
    reproduce.add_argument("--figures", default="figures", help="figures folder (%(default)s)")
    reproduce.add_argument("--model", default=None, help="model (default: the embedded one)")
    reproduce.add_argument("--update-docs", action="store_true",
                           help="rewrite the generated sections of README.md and docs/theory.md")
    reproduce.add_argument("--overwrite", action="store_true", help="replace completed runs")
    reproduce.add_argument("--quiet", action="store_true", help="no progress bars")
    reproduce.set_defaults(handler=cmd_reproduce)
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
