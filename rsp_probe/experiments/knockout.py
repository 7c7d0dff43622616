"""`rsp-probe knockout`: which steps and layers of RSP attention carry its effect.

On the same prompts, RSP draws and sampling seeds: the full-RSP run, the baseline (no RSP),
and the full run with the RSP keys knocked out (rsp_probe.interventions): from step s on
for each --cut-after s (1 = the prefill pass, never = nothing), and at one layer at a time
from step 1 for each --block-layers layer. Each knockout is also teacher-forced along its
full-RSP twin's tokens (KL(p_full || p_knocked) per step, probe `knockout_kl`). So is each
--paths path, sampled exactly (two passes per step over the KV cache; see
rsp_probe.interventions.spec): direct-only (only the newest query reads the RSP) and
indirect-only (only the earlier positions do). The measures (analysis/knockout.py) go to
knockout.parquet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rsp_probe.analysis.tables import KNOCKOUT_FILE
from rsp_probe.config import Condition, _opt, config_value, pass_k_option, single_dose
from rsp_probe.errors import UsageError
from rsp_probe.experiments.base import Experiment, register_experiment
from rsp_probe.experiments.plan_sizes import COMPARED
from rsp_probe.interventions.spec import Knockout, check_layers, parse_cut_steps, parse_paths
from rsp_probe.probes.base import LOGIT_ONLY_PROBES

if TYPE_CHECKING:
    import pandas as pd

    from rsp_probe.backends.base import Backend
    from rsp_probe.experiments.common import Session, Spec
    from rsp_probe.runs import Run


@dataclass(frozen=True)
class KnockoutOptions:
    cut_after: tuple[str, ...] = _opt(("1", "2", "4", "8", "16", "never"),
                                      "block every query from the RSP keys from step s on "
                                      "(1 = prefill; never)")
    block_layers: tuple[int, ...] = _opt((), "layers to knock out one at a time from step 1 "
                                         "(default: every layer)")
    paths: tuple[str, ...] = _opt(("direct", "indirect"), "paths of the RSP's influence to "
                                  "sample alone: direct (only the newest query reads the "
                                  "RSP), indirect (only earlier positions do), or none")
    pass_k: tuple[int, ...] = pass_k_option((1, 2, 4))


def knockouts(spec: Spec, n_layers: int) -> list[Knockout]:
    """The run's interventions, checked; raises UsageError on bad input."""
    cuts = parse_cut_steps(spec.option("cut_after"))
    layers = check_layers(spec.option("block_layers"), n_layers) or tuple(range(n_layers))
    paths = parse_paths(spec.option("paths"))
    return [Knockout(step) for step in cuts] + [Knockout(1, (layer,)) for layer in layers] + [
        Knockout(None, path=path) for path in paths]


def _check(spec: Spec, model: Backend | None) -> list[Knockout]:
    """Every input check, before any model is loaded (the layer count from config.json)."""
    if single_dose(spec.command, spec.rsp.rsp_tokens) < 1:
        raise UsageError("knockout needs --rsp-tokens above 0")
    return knockouts(spec, model.info.n_layers if model is not None
                     else _config_layers(spec.model.model))


def _config_layers(model: str | None) -> int:
    from rsp_probe.models import resolve_model_path

    path, _, _ = resolve_model_path(model)
    config = json.loads((path / "config.json").read_text())
    return int(config.get("num_hidden_layers", config.get("n_layer", 0)))


def run_knockout(spec: Spec, model: Backend | None = None) -> tuple[Run, pd.DataFrame]:
    from rsp_probe.experiments.common import Session

    interventions = _check(spec, model)
    session = Session(spec, model)
    with session:
        _stream(session, interventions)
        session.writer.merge_parts()
        _write_table(session.writer, tuple(spec.option("pass_k")))
        run = session.finish()
    return run, run.table(KNOCKOUT_FILE)


def _write_table(writer, ks) -> None:
    writer.write_derived(knockout_file(writer.staged_run(), ks))


def knockout_file(run: Run, ks=None) -> dict:
    """knockout.parquet from the run's trajectories and steps (also after `grade`)."""
    from rsp_probe.analysis.knockout import knockout_table

    return {KNOCKOUT_FILE: knockout_table(run, tuple(ks or config_value(run.config, "pass_k")))}


def knockout_summary(run: Run) -> pd.DataFrame:
    return run.table(KNOCKOUT_FILE)


def _stream(session: Session, interventions: list[Knockout]) -> None:
    """The full-RSP run, the baseline, then the full run's jobs under each knockout, each a
    block of parts after the other (--resume skips the parts done); each knockout's batch
    is teacher-forced along its full twins' tokens (read back from the full run's parts)."""
    from functools import cache, partial

    from rsp_probe.experiments.sampling import build_jobs, phase_tokens, rsp_law, stream_jobs

    spec = session.spec
    k = single_dose(spec.command, spec.rsp.rsp_tokens)
    temperature, top_p = spec.sampling.temperature, spec.sampling.top_p
    full_condition = Condition("full", k, temperature, top_p)
    session.plan_progress([(full_condition, spec.sampling.samples),
                           (Condition("baseline", 0, temperature, top_p), spec.sampling.samples)]
                          + [(full_condition, spec.sampling.samples)] * len(interventions))
    phases = [(full_condition, None), (Condition("baseline", 0, temperature, top_p), None)] + [
        (Condition(knockout.name, k, temperature, top_p), knockout) for knockout in interventions]
    law, first_part, first_record, full = rsp_law(session), 0, 0, None
    for condition, knockout in phases:  # a knockout's jobs: the full run's, renamed
        jobs, skeleton = build_jobs(session, [condition], spec.sampling.samples, law=law,
                                    draw=False)
        parts = stream_jobs(session, jobs, skeleton, law, first_part=first_part,
                            order=lambda i, start=first_record: start + i,
                            interventions=_interventions(spec, knockout),
                            complete=None if knockout is None
                            else partial(_knocked, session, knockout, full))
        if full is None:  # its tokens read back once, when a knockout's batch needs them
            full = cache(partial(phase_tokens, session, range(first_part, first_part + parts)))
        first_part, first_record = first_part + parts, first_record + len(jobs)


def _interventions(spec: Spec, knockout: Knockout | None) -> list:
    from rsp_probe.experiments.sampling import law_interventions
    from rsp_probe.interventions.knockout import knockout_factory

    return law_interventions(spec.rsp.law) + (
        [knockout_factory(knockout)] if knockout else [])


def _knocked(session: Session, knockout: Knockout, full, jobs, sampled) -> None:
    """A decoded batch under `knockout`: the intervention named in each record, and the
    teacher-forced KL along each full twin's own tokens."""
    from rsp_probe.interventions.teacher_forced import knockout_kl, path_kl

    for record in sampled.records:
        record["intervention"] = knockout.describe()
    for job in jobs:
        _, prompt_id, sample = job.id.split("/")
        tokens = full()[(prompt_id, int(sample))]
        if tokens and knockout.path is not None:
            sampled.steps[job.id]["knockout_kl"] = path_kl(session.model, job, tokens,
                                                           knockout.path)
        elif tokens:
            sampled.steps[job.id]["knockout_kl"] = knockout_kl(session.model, [job], tokens,
                                                               knockout)[0]


EXPERIMENT = register_experiment(Experiment(
    name="knockout",
    help="RSP keys knocked out from step s on, by layer, or on one path (direct / indirect), "
    "against the full-RSP run and the baseline: KL, first divergence, branching, accuracy, "
    "pass@k",
    run=run_knockout, options=KnockoutOptions,
    describe="rsp_probe.analysis.summaries:describe_knockout",
    defaults={"rsp_tokens": (4,), "samples": 4, "temperature": 1.0, "max_new_tokens": 32},
    single_dose=True, probes=LOGIT_ONLY_PROBES, claims=("rsp_probe.claims.outcomes",),
    reproduce=(("knockout", dict(COMPARED, rsp_tokens=(16,))),),
    figures=("knockout", "knockout_layers"), derive=knockout_file, summarize=knockout_summary,
    trajectory_order="condition"))
