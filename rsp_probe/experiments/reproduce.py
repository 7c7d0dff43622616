"""`rsp-probe reproduce`: every experiment the figures need, on one loaded model, then the
figures, the theory comparison and the results text (what the README and docs quote).

The plan is data: (run name, command, options), each experiment declaring its own runs
(`Experiment.reproduce`; their sizes in rsp_probe.experiments.plan_sizes), fixed before any
result is looked at; `rsp_probe.registry.reproduce_plan` gathers them in registry order. A
completed run whose measured configuration equals the plan's is reused, so an interrupted
reproduce continues where it stopped; --overwrite reruns everything.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rsp_probe.experiments.base import execute, get_experiment
from rsp_probe.registry import reproduce_plan

PLAN: tuple[tuple[str, str, dict], ...] = reproduce_plan()
RESULTS_FILE = "RESULTS.md"


def run_plan(out: Path, model=None, model_spec: str | None = None, quiet: bool = False,
             overwrite: bool = False, plan=PLAN,
             report: Callable[[str], None] | None = None) -> list:
    """Run every experiment of `plan` into out/<name>. Each run loads `model_spec` behind the
    backend `--backend auto` picks for its probes, unless a loaded `model` is given. `report`
    receives one progress line per run (the CLI prints it)."""
    runs = []
    for index, (name, command, options) in enumerate(plan, 1):
        if report is not None:
            report(f"[{index}/{len(plan)}] rsp-probe {command} -> {out / name}")
        if model_spec is not None and options.get("soft_prompt") == "default":
            if report is not None:  # the committed prompt was trained for the default model
                report("      skipped: --soft-prompt default is for the default model; "
                       "`rsp-probe tune-prompt` trains one for this model")
            continue
        experiment = get_experiment(command)
        spec = experiment.spec(model_spec, out=str(out / name), overwrite=overwrite, quiet=quiet,
                               **options)
        run = None if overwrite else reusable_run(out / name, spec)
        if run is None:
            run, _ = execute(experiment, spec, model)
        elif report is not None:
            report(f"      reused the completed run {out / name}")
        runs.append(run)
    return runs


def reusable_run(path: Path, spec):
    """The completed run at `path` if it measured exactly what `spec` asks for (execution
    keys aside), else None when there is none; a different completed run is an error."""
    from rsp_probe.config import config_value
    from rsp_probe.errors import UsageError
    from rsp_probe.runs import DONE_FILE, EXECUTION_KEYS, open_run

    if not (path / DONE_FILE).exists():
        return None
    run = open_run(path)
    wanted = {k: v for k, v in spec.to_dict().items() if k not in EXECUTION_KEYS}
    found = {k: config_value(run.config, k, None) for k in wanted}
    if found != wanted:
        changed = sorted(k for k in wanted if found[k] != wanted[k])
        raise UsageError(f"{path}: a completed run with another configuration ({', '.join(changed)}"
                         f" differ); --overwrite replaces it")
    return run


def results_text(runs: list) -> str:
    """Each run's summary exactly as `rsp-probe show --full` prints it (every report step,
    as the README has always quoted)."""
    from rsp_probe.analysis.summaries import describe

    sections = []
    for run in runs:
        sections.append(f"### `{run.id}` ({run.command})\n\n```\n{describe(run, full=True)}\n```\n")
    return "\n".join(sections)
