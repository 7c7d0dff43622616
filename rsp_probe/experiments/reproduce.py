"""`rsp-probe reproduce`: every experiment the figures need, on one loaded model, then the
figures, the theory comparison and the results text (what the README and docs quote).

The plan is data: (run name, command, options). Sizes are chosen so that the whole set runs
in about 15 minutes on a 2-core CPU with the embedded default model.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rsp_probe.experiments.base import execute, get_experiment

MAIN = dict(n_prompts=24, max_new_tokens=96)
PLAN: tuple[tuple[str, str, dict], ...] = (
    ("entropy", "entropy", dict(MAIN, rsp_tokens=(0, 4, 16), samples=4, temperature=0.7)),
    ("attention", "attention", dict(MAIN, rsp_tokens=(4, 16), samples=2, temperature=0.7)),
    ("influence", "influence", dict(MAIN, rsp_tokens=(4, 16), samples=8)),
    ("branching", "branching", dict(MAIN, rsp_tokens=(4,), samples=8, temperature=1.0)),
    ("passk", "passk", dict(MAIN, n_prompts=60, rsp_tokens=(4,), samples=16, temperature=1.0,
                            k=(1, 2, 4, 8, 16))),
    ("knockout", "knockout", dict(MAIN, n_prompts=24, max_new_tokens=48, rsp_tokens=(4,),
                                  samples=4, temperature=1.0, k=(1, 2, 4))),
    ("dose", "dose", dict(MAIN, n_prompts=24, max_new_tokens=48, rsp_tokens=(1, 2, 4, 8, 16, 32),
                          sigma_scales=("0.5", "2"), samples=4, temperature=1.0, k=(1, 2, 4))),
    # Ablations: one factor away from the main entropy run each.
    ("ablation-sigma0.5", "entropy", dict(MAIN, rsp_tokens=(0, 4), sigma_scale=0.5)),
    ("ablation-sigma2", "entropy", dict(MAIN, rsp_tokens=(0, 4), sigma_scale=2.0)),
    ("ablation-prefix", "entropy", dict(MAIN, rsp_tokens=(0, 4), placement="prefix")),
    ("ablation-per-dim", "entropy", dict(MAIN, rsp_tokens=(0, 4), law="per-dim")),
    ("ablation-tokens", "entropy", dict(MAIN, rsp_tokens=(0, 4), law="tokens")),
    ("ablation-fixed-draw", "entropy", dict(MAIN, rsp_tokens=(0, 4), fixed_draw=True)),
)
RESULTS_FILE = "RESULTS.md"


def run_plan(out: Path, model=None, model_spec: str | None = None, quiet: bool = False,
             overwrite: bool = False, plan=PLAN,
             report: Callable[[str], None] | None = None) -> list:
    """Run every experiment of `plan` into out/<name>; the model is loaded once. `report`
    receives one progress line per run (the CLI prints it)."""
    from rsp_probe.models import load_model

    model = model or load_model(model_spec)
    runs = []
    for index, (name, command, options) in enumerate(plan, 1):
        if report is not None:
            report(f"[{index}/{len(plan)}] rsp-probe {command} -> {out / name}")
        experiment = get_experiment(command)
        spec = experiment.spec(out=str(out / name), overwrite=overwrite, quiet=quiet, **options)
        run, _ = execute(experiment, spec, model)
        runs.append(run)
    return runs


def results_text(runs: list) -> str:
    """Each run's summary exactly as `rsp-probe show --full` prints it (every report step,
    as the README has always quoted)."""
    from rsp_probe.analysis.summaries import describe

    sections = []
    for run in runs:
        sections.append(f"### `{run.id}` ({run.command})\n\n```\n{describe(run, full=True)}\n```\n")
    return "\n".join(sections)
