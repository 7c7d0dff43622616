"""`rsp-probe` command line. Heavy modules (torch, transformer_lens) are imported inside the
command that needs them, so `--help` stays instant."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys

from rsp_probe.cli_options import add_options, in_typed_words, options_of
from rsp_probe.config import EXPERIMENT_PIECES, ModelConfig
from rsp_probe.errors import GradingError, UsageError


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments give one line on stderr and exit code 2 (argparse prints the usage too)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


DESCRIPTION = """Mechanistic probes for Random Soft Prompts (RSPs): k random vectors drawn from a
Gaussian fitted to a model's input-embedding table, appended to its input embeddings.

Each experiment command (entropy, attention, influence, branching, passk, knockout, dose,
compare-prompts) runs a model, writes a run directory and prints its summary; show, figures,
theory, claims, merge and grade work from saved runs without a model."""
EPILOG = "`rsp-probe COMMAND --help` lists a command's options with their defaults."


# -- commands ---------------------------------------------------------------------------------

def spec_from_args(experiment, args: argparse.Namespace):
    """The Spec a parsed command line asks for (the API resolves the same defaults)."""
    from rsp_probe.experiments.common import build_spec

    own = {name: getattr(args, name) for name in experiment.option_defaults()}
    return build_spec(experiment.name, extra=own, **options_of(args, EXPERIMENT_PIECES))


def cmd_experiment(args) -> int:
    """Run a registered experiment, print its short summary (what `rsp-probe show` prints
    again) and the paths of the run and of its figure."""
    from rsp_probe.analysis.summaries import describe
    from rsp_probe.experiments.base import execute, get_experiment
    from rsp_probe.figures import figure_module
    from rsp_probe.figures.render import run_figure_path

    experiment = get_experiment(args.command)
    run, _ = execute(experiment, spec_from_args(experiment, args))
    print(describe(run))
    print(f"\nrun written to {run.path}", file=sys.stderr)
    figure = (run_figure_path(run, figure_module(experiment.figures[0]).NAME)
              if experiment.figures else None)
    if figure is not None and figure.exists():
        print(f"figure: {figure}", file=sys.stderr)
    return 0


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
    from rsp_probe.analysis.theory_report import replace_generated, split_at_markers, theory_report
    from rsp_probe.runs import find_runs

    if args.report:
        split_at_markers(args.report)  # a missing report or markers: say so before the work
    text = theory_report(find_runs(args.runs))
    print(text)
    if args.report:
        replace_generated(args.report, text)
        print(f"\nwritten into {args.report}", file=sys.stderr)
    return 0


def cmd_reproduce(args) -> int:
    from pathlib import Path

    from rsp_probe.analysis.theory_report import theory_report
    from rsp_probe.claims.command import run_claims
    from rsp_probe.claims.documents import CLAIMS_FILE
    from rsp_probe.claims.evidence import compact_runs
    from rsp_probe.experiments.reproduce import RESULTS_FILE, results_text, run_plan
    from rsp_probe.figures.render import render_all

    if args.plan == "paper":
        from rsp_probe.experiments.paper import run_paper

        return run_paper(args)
    if args.dry_run or args.dataset or args.limit is not None:
        raise UsageError("--dry-run, --dataset and --limit belong to --plan paper")
    out = Path(args.out or "runs/reproduce")
    runs = run_plan(out, model_spec=args.model, quiet=args.quiet, overwrite=args.overwrite,
                    report=lambda line: print(line, file=sys.stderr))
    args.figures = args.figures or "figures"
    figures = render_all([run.path for run in runs], args.figures)
    (out / RESULTS_FILE).write_text(f"# Results of `rsp-probe reproduce`\n\n{results_text(runs)}"
                                    f"\n## Theory comparison\n\n{theory_report(runs)}\n")
    evidence = Path(args.figures) / "runs"
    compact_runs([run.path for run in runs], evidence)
    run_claims(evidence, Path(args.figures) / CLAIMS_FILE, update_docs=args.update_docs)
    for message in figures["skipped"].values():
        print(message, file=sys.stderr)
    print(f"runs in {out} (kept compact in {evidence}), figures in {args.figures}, "
          f"summary in {out / RESULTS_FILE}")
    return 0


def cmd_claims(args) -> int:
    from rsp_probe.claims.command import run_claims

    if args.keep_from:
        from rsp_probe.claims.command import plan_runs
        from rsp_probe.claims.evidence import compact_runs

        kept = compact_runs([run.path for run in plan_runs(args.keep_from).values()], args.runs)
        print(f"kept {len(kept)} runs of {args.keep_from} in {args.runs}", file=sys.stderr)
    return run_claims(args.runs, args.out, update_docs=args.update_docs, check=args.check)


def cmd_show(args) -> int:
    """A run directory is opened as asked (damaged: one line, exit 2); a folder of runs
    shows the intact ones and skips the others with a warning."""
    from pathlib import Path

    from rsp_probe.analysis.summaries import describe
    from rsp_probe.runs import find_runs, is_run_directory, open_run

    for path in args.runs:
        runs = [open_run(path)] if is_run_directory(Path(path)) else find_runs([path])
        if not runs:
            raise UsageError(f"{path}: not a run directory, and no intact run below it")
        for run in runs:
            print(describe(run, full=args.full))
    return 0


def cmd_clean(args) -> int:
    """Leftovers of killed runs: staging folders, displaced runs (put back), stale locks."""
    from pathlib import Path

    from rsp_probe.runio.publish import clean

    for folder in map(Path, args.folders):
        if not folder.is_dir():
            raise UsageError(f"{folder}: no such directory")
        done = clean(folder)
        print("\n".join(done) if done else f"{folder}: nothing to clean")
    return 0


def cmd_merge(args) -> int:
    from rsp_probe.analysis.summaries import describe
    from rsp_probe.experiments.distributed import merge_shards

    run = merge_shards(args.runs, args.out, overwrite=args.overwrite)
    print(describe(run))
    print(f"\nrun written to {run.path}", file=sys.stderr)
    return 0


def cmd_grade(args) -> int:
    from rsp_probe.analysis.regrade import grade_command

    return grade_command(args.path, args.out, args.overwrite, args.timeout)


def cmd_train_toy(args) -> int:
    from dataclasses import replace
    from pathlib import Path

    from rsp_probe.models import load_model
    from rsp_probe.toy.card import measure_quality, write_card
    from rsp_probe.toy.train import QUICK, QUICK_CARD_PROBLEMS, TrainConfig, train

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise UsageError(f"--out {out}: not empty (use --overwrite to replace a checkpoint)")
    config = replace(TrainConfig(), seed=args.seed, max_minutes=args.max_minutes,
                     stop_step=args.steps, init=args.init, **(QUICK if args.quick else {}))
    log = train(out, config, progress=not args.quiet and sys.stderr.isatty())
    model = load_model(str(out))  # the same path every command uses
    n_card = QUICK_CARD_PROBLEMS if args.quick else args.card_problems
    results = measure_quality(model, n_prompts=n_card, quiet=args.quiet)
    write_card(out, log, results, model.n_parameters(), n_card)
    print((out / "README.md").read_text())
    return 0


def cmd_tune_prompt(args) -> int:
    """Train a soft prompt at the RSP's placement; print its card."""
    import json
    from pathlib import Path

    from rsp_probe.models import load_model
    from rsp_probe.soft_prompts.options import TuneOptions
    from rsp_probe.soft_prompts.train import tune_and_save

    options = TuneOptions(**options_of(args, (TuneOptions,)))
    if Path(options.out).exists() and not options.overwrite:
        raise UsageError(f"--out {options.out}: exists (use --overwrite to replace it)")
    if args.backend == "transformer-lens":
        raise UsageError("tune-prompt trains through the Hugging Face model: use --backend hf "
                         "or auto")
    model = load_model(args.model, dtype=args.dtype, device=args.device, backend="hf")
    card = tune_and_save(model, options, progress=sys.stderr.isatty())
    print(json.dumps({k: v for k, v in card.items() if k != "loss_log"}, indent=2))
    print(f"soft prompt written to {options.out}", file=sys.stderr)
    return 0


def cmd_model_card(args) -> int:
    from rsp_probe.models import load_model
    from rsp_probe.toy.card import measure_quality, quality_table, targets

    model = load_model(args.model, dtype=args.dtype, device=args.device, backend=args.backend)
    results = measure_quality(model, n_prompts=args.n_prompts, seed=args.seed, quiet=args.quiet)
    print(f"# quality of {model.info.name} on {args.n_prompts} test problems, seed {args.seed}")
    print(quality_table(results))
    print("\n".join(targets(results)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from rsp_probe import __version__
    from rsp_probe.experiments.base import experiments

    parser = OneLineParser(prog="rsp-probe", description=DESCRIPTION, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"rsp-probe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser,
                                metavar="COMMAND")
    for name, experiment in experiments().items():
        command = sub.add_parser(name, help=experiment.help, description=experiment_description(
            experiment), formatter_class=argparse.RawDescriptionHelpFormatter)
        for piece in EXPERIMENT_PIECES:
            add_options(command, piece, experiment.defaults)
        add_options(command, experiment.options)
        command.set_defaults(handler=cmd_experiment)
    train = sub.add_parser("train-toy", help="train the embedded default model on CPU")
    train.add_argument("--out", required=True, help="checkpoint directory to write")
    train.add_argument("--quick", action="store_true", help="a few steps, for tests")
    train.add_argument("--seed", type=int, default=0, help="training seed (default: %(default)s)")
    train.add_argument("--max-minutes", type=float, default=90.0,
                       help="training time budget (default: %(default)s)")
    train.add_argument("--steps", type=int, default=None,
                       help="stop after this many steps (reproduces a checkpoint exactly)")
    train.add_argument("--init", default=None,
                       help="checkpoint to continue training from (default: from scratch)")
    train.add_argument("--card-problems", type=int, default=200,
                       help="test problems measured for the model card (default: %(default)s)")
    train.add_argument("--overwrite", action="store_true", help="replace a checkpoint at --out")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=cmd_train_toy)
    tune = sub.add_parser("tune-prompt", help="train a soft prompt at the RSP's placement "
                          "(the model frozen), for --law trained and compare-prompts")
    add_options(tune, ModelConfig)
    from rsp_probe.soft_prompts.options import TuneOptions

    add_options(tune, TuneOptions)
    tune.set_defaults(handler=cmd_tune_prompt)
    card = sub.add_parser("model-card", help="re-measure the quality numbers of a model card")
    add_options(card, ModelConfig)
    card.add_argument("--n-prompts", type=int, default=200,
                      help="test problems (default: %(default)s)")
    card.add_argument("--seed", type=int, default=1, help="sampling seed (default: %(default)s)")
    card.add_argument("--quiet", action="store_true", help="no progress output")
    card.set_defaults(handler=cmd_model_card)
    figures = sub.add_parser("figures", help="draw every mechanism figure from saved runs")
    figures.add_argument("--runs", nargs="+", required=True,
                         help="run directories, or folders holding runs")
    figures.add_argument("--out", default="figures", help="output folder (default: %(default)s)")
    figures.set_defaults(handler=cmd_figures)
    theory = sub.add_parser("theory", help="compare runs with the dilution and branching theory")
    theory.add_argument("runs", nargs="+", help="run directories, or folders holding runs")
    theory.add_argument("--report", help="Markdown file whose generated section to replace")
    theory.set_defaults(handler=cmd_theory)
    reproduce = sub.add_parser("reproduce", help="run every experiment of the figures on the "
                               "default model, then draw them")
    reproduce.add_argument("--out", help="runs folder (runs/reproduce; --plan paper: runs/paper)")
    reproduce.add_argument("--figures", help="figures folder (figures; --plan paper: "
                           "OUT/figures, so the default model's figures stay)")
    reproduce.add_argument("--model", default=None, help="model (default: the embedded one)")
    reproduce.add_argument("--update-docs", action="store_true",
                           help="rewrite the generated sections of README.md, docs/results.md "
                                "and docs/theory.md")
    reproduce.add_argument("--overwrite", action="store_true", help="replace completed runs")
    reproduce.add_argument("--quiet", action="store_true", help="no progress bars")
    from rsp_probe.experiments.paper import add_paper_options

    add_paper_options(reproduce)
    reproduce.set_defaults(handler=cmd_reproduce)

    claims = sub.add_parser("claims", help="the claims table (figures/claims.json) from saved "
                            "runs; --update-docs renders the verdicts into README.md and the "
                            "claims into docs/results.md and docs/theory.md")
    claims.add_argument("--runs", default="figures/runs", help="runs folder (%(default)s)")
    claims.add_argument("--out", default="figures/claims.json", help="claims table (%(default)s)")
    claims.add_argument("--keep-from", metavar="DIR", help="first keep the reproduce plan's "
                        "completed runs in DIR (e.g. runs/reproduce) compact in --runs")
    claims.add_argument("--update-docs", action="store_true",
                        help="write the verdicts into README.md and the claims into "
                        "docs/results.md and docs/theory.md")
    claims.add_argument("--check", action="store_true", help="exit 1 when README.md, "
                        "docs/results.md or docs/theory.md no longer state what the runs give")
    claims.set_defaults(handler=cmd_claims)
    show = sub.add_parser("show", help="print a run's summary again, without a model")
    show.add_argument("runs", nargs="+", help="run directories, or folders holding runs")
    show.add_argument("--full", action="store_true",
                      help="every report step in the tables (default: a few)")
    show.set_defaults(handler=cmd_show)
    clean = sub.add_parser("clean", help="remove what killed runs left next to their --out")
    clean.add_argument("folders", nargs="+", help="folders holding runs (the parent of --out)")
    clean.set_defaults(handler=cmd_clean)
    merge = sub.add_parser("merge", help="join the runs of --shard 0/N .. N-1/N into one run")
    merge.add_argument("runs", nargs="+", help="the shards' run directories")
    merge.add_argument("--out", required=True, help="run directory to write")
    merge.add_argument("--overwrite", action="store_true", help="replace a completed run at --out")
    merge.set_defaults(handler=cmd_merge)
    grade = sub.add_parser("grade", help="re-grade a finished run into a new run, or grade a "
                           'JSONL file of {"text": ..., "answer": ...} lines')
    grade.add_argument("path", help="a run directory or a .jsonl file")
    grade.add_argument("--out", help="run: the new run directory (default RUN-regraded); "
                       "file: the graded JSONL (default standard output)")
    grade.add_argument("--overwrite", action="store_true", help="replace what is at --out")
    grade.add_argument("--timeout", type=float, default=5.0,
                       help="seconds one check may take before it is left ungraded "
                       "(default: %(default)s)")
    grade.set_defaults(handler=cmd_grade)
    for choice in sub._choices_actions:  # each command's --help opens with what it does
        command = sub.choices[choice.dest]
        command.description = command.description or f"{choice.help[0].upper()}{choice.help[1:]}."
    return parser


def experiment_description(experiment) -> str:
    """A subcommand's --help description: its module's docstring, which says what it runs
    and what it writes (the one-line help where there is none)."""
    doc = sys.modules[experiment.run.__module__].__doc__
    return doc.strip() if doc else experiment.help


def report_to_stderr() -> logging.Handler:
    """The CLI's reporter: the package's INFO records, one line each on stderr."""
    logger = logging.getLogger("rsp_probe")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


def one_line_warning(message, category, *rest, **kwargs) -> str:
    """Warnings (a skipped run) as one line each, without the source line under them."""
    return f"rsp-probe: warning: {message}\n"


@contextlib.contextmanager
def file_backend():
    """The CLI only writes figure files: matplotlib's Agg backend, for this command only.

    Chosen through MPLBACKEND, which matplotlib reads when it is imported (so commands that
    draw nothing import nothing), and put back afterwards: a Jupyter kernel started later by
    the same process must still get its inline backend. A process that imported matplotlib
    before keeps its backend; the figures are closed once saved, so none is shown.
    """
    previous = os.environ.get("MPLBACKEND")
    if "matplotlib" not in sys.modules:
        os.environ["MPLBACKEND"] = "Agg"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = previous


def main(argv: list[str] | None = None) -> int:
    import warnings

    try:
        parser = build_parser()  # reads the registries: a broken plugin is caught here
    except UsageError as err:
        print(f"rsp-probe: error: {err}", file=sys.stderr)
        return 2
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        # argparse would say "arguments are required: command", hiding the real mistake
        parser.error(f"unrecognized option {argv[0]} (a command comes first; see --help)")
    args = parser.parse_args(argv)
    warnings.formatwarning = one_line_warning
    handler = report_to_stderr()
    try:
        with file_backend():
            return args.handler(args)
    except UsageError as err:  # named as typed: --n, not --samples
        print(f"rsp-probe {args.command}: error: {in_typed_words(str(err), args)}",
              file=sys.stderr)
        return 2
    except GradingError as err:  # never a wrong answer: the run stops, with no DONE
        print(f"rsp-probe {args.command}: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # a full disk, a read-only folder: the system's own one line
        print(f"rsp-probe {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rsp-probe {args.command}: interrupted (an experiment's finished batches are "
              "kept: the same command with --resume continues it)", file=sys.stderr)
        return 130
    finally:
        logging.getLogger("rsp_probe").removeHandler(handler)


if __name__ == "__main__":
    sys.exit(main())
