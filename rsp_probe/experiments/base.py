"""An experiment declared once: the Experiment a module registers in
rsp_probe.registry.EXPERIMENTS.

The CLI builds one subcommand per registered experiment, the Python API (`rsp_probe.entropy`)
calls the same object, `rsp-probe show` asks it to describe a run, and the figures, the
claims and `reproduce` read what it declares. Everything about an experiment is in its
module (a plugin's module, too: rsp_probe.registry says how plugins are found):

    EXPERIMENT = register_experiment(Experiment(
        name="entropy", help="...", run=run_entropy, options=EntropyOptions,
        defaults={"rsp_tokens": (0, 4)}, describe="rsp_probe.analysis.summaries:describe_entropy",
        probes=DEFAULT_PROBES, figures=("entropy", "ablations"),
        claims=("rsp_probe.claims.mechanism",), reproduce=(("entropy", {...}),)))

`options` is a frozen dataclass of the experiment's own options (their `help` metadata becomes
`--help`); `defaults` overrides the shared config pieces' defaults (config.py) for this
experiment, for the CLI and the API alike. Code is named as "module:function" (or a module
path, for figures and claims) so that listing experiments, as `--help` does, imports no
heavy module. Importing this module imports no torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rsp_probe.registry import EXPERIMENTS, resolve

if TYPE_CHECKING:
    import pandas as pd

    from rsp_probe.experiments.common import Spec
    from rsp_probe.runs import Run


@dataclass(frozen=True)
class NoOptions:
    """An experiment without options of its own."""


@dataclass(frozen=True)
class Experiment:
    name: str
    help: str
    run: Callable[..., tuple[Run, pd.DataFrame]]  # (spec, model=None) -> (run, summary table)
    describe: Callable[[Run], str] | str  # the summary text commands and `show` print
    options: type = NoOptions  # frozen dataclass of this experiment's own options
    defaults: Mapping[str, Any] = field(default_factory=dict)  # shared-config overrides
    # figure modules fed by its runs (a bare name is rsp_probe.figures.<name>); the first is
    # drawn into each run
    figures: tuple[str, ...] = ()
    # claim modules over its runs (each registers its families with claims.core.claim_family)
    claims: tuple[str, ...] = ()
    # its runs in `rsp-probe reproduce`: (run name, options), fixed before any result is seen
    reproduce: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    # the probes its runs record (rsp_probe.probes.base), in steps.parquet
    probes: tuple[str, ...] = ()
    theory: Callable[[Run], list[str]] | str | None = None  # `rsp-probe theory` section
    # files computed from a staged run's trajectories ({name: table or JSON}); the experiment
    # writes them, and `merge` and `grade` recompute them over the runs they write
    derive: Callable[[Run], dict[str, Any]] | str | None = None
    # the summary table `run` returns with its run, from the run alone (for merged runs)
    summarize: Callable[[Run], pd.DataFrame] | str | None = None
    # trajectories.jsonl order, which `merge` restores: "prompt" (each prompt's trajectories
    # contiguous) or "condition" (one block per condition, each block in prompt order)
    trajectory_order: str = "prompt"
    # one --rsp-tokens k per run (config.single_dose); a list is refused before a model loads
    single_dose: bool = False

    def option_defaults(self) -> dict[str, Any]:
        """The experiment's own options with their defaults."""
        return {f.name: f.default for f in dataclasses.fields(self.options)}

    def spec(self, model: str | None = None, **options: Any) -> Spec:
        """Resolve options (shared pieces and the experiment's own) over the defaults."""
        from rsp_probe.experiments.common import build_spec

        own = self.option_defaults()
        extra = {name: _as_tuple(options.pop(name, default)) for name, default in own.items()}
        from rsp_probe.validation import check_options

        check_options(self.options, extra)
        return build_spec(self.name, extra=extra, model=model, **{**self.defaults, **options})

    def __call__(self, model: Any = None, **options: Any) -> tuple[Run, pd.DataFrame]:
        """The Python API: `rsp_probe.<name>(model=None, **options) -> (Run, DataFrame)`.

        `model` is a checkpoint path, a Hub id in the local cache, None (the embedded default
        model) or a loaded backend (rsp_probe.load_model), reused without reloading.
        """
        from rsp_probe.backends.base import Backend

        loaded = model if isinstance(model, Backend) else None
        return execute(self, self.spec(None if loaded else model, **options), loaded)

    def describe_run(self, run: Run, full: bool = False) -> str:
        return resolve(self.describe)(run, full=full)

    def derived_files(self, run: Run) -> dict[str, Any]:
        return resolve(self.derive)(run) if self.derive is not None else {}

    def summary(self, run: Run) -> pd.DataFrame:
        return resolve(self.summarize)(run) if self.summarize is not None else run.trajectories


def execute(experiment: Experiment, spec: Spec, model: Any = None) -> tuple[Run, pd.DataFrame]:
    """Run the experiment, here or (--workers, --ray-address) as shards on Ray workers. Its
    own figure is drawn into the staged run before it is published (`draw_run_figure`, from
    Session.finish and merge), so DONE lists the figure's files."""
    if experiment.single_dose:
        from rsp_probe.config import single_dose

        single_dose(experiment.name, spec.rsp.rsp_tokens)
    if spec.output.workers or spec.output.ray_address:
        from rsp_probe.experiments.distributed import run_on_ray

        return run_on_ray(experiment, spec, model)
    return experiment.run(spec, model)


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def register_experiment(experiment: Experiment, overwrite: bool = False) -> Experiment:
    return EXPERIMENTS.register(experiment.name, experiment, overwrite=overwrite)


def unregister_experiment(name: str) -> None:
    EXPERIMENTS.unregister(name)


def experiments() -> dict[str, Experiment]:
    """Every registered experiment by name: the built-ins first, then the plugins'."""
    return EXPERIMENTS.entries()


def get_experiment(name: str) -> Experiment:
    return EXPERIMENTS.get(name)
