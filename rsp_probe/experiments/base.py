"""The experiment registry: one registered Experiment per experiment module.

The CLI builds one subcommand per registered experiment, the Python API (`rsp_probe.entropy`)
calls the same object, `rsp-probe show` asks it to describe a run, `reproduce` and the
figures look experiments up by name. An experiment is therefore added in one file:

    EXPERIMENT = register_experiment(Experiment(
        name="entropy", help="...", run=run_entropy, options=EntropyOptions,
        defaults={"rsp_tokens": (0, 4)}, describe="rsp_probe.analysis.summaries:describe_entropy",
        figures=("entropy", "ablations")))

`options` is a frozen dataclass of the experiment's own options (their `help` metadata becomes
`--help`); `defaults` overrides the shared config pieces' defaults (config.py) for this
experiment, for the CLI and the API alike. `describe` and `theory` may be given as
"module:function" so that listing experiments (as `--help` does) imports no heavy module.
Importing this module imports no torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from rsp_probe.experiments.common import Spec
    from rsp_probe.runs import Run

# the built-in experiments, in CLI and figure order; each module exports EXPERIMENT
BUILTIN = ("entropy", "attention", "influence", "branching", "passk", "knockout", "dose",
           "compare_prompts", "train_rl")


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
    figures: tuple[str, ...] = ()  # figures fed by its runs; the first is drawn into each run
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
        from rsp_probe.runio.distributed import run_on_ray

        return run_on_ray(experiment, spec, model)
    return experiment.run(spec, model)


def draw_run_figure(command: str, staged: Run) -> None:
    """The registered experiment's first figure, drawn from its staged run into it."""
    experiment = experiments().get(command)
    if experiment is not None and experiment.figures:
        from rsp_probe.figures.render import render_run_figure

        render_run_figure(staged, experiment.figures[0])


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def resolve(ref: Callable | str) -> Callable:
    """A function, or "module:function" imported now."""
    if not isinstance(ref, str):
        return ref
    module, attribute = ref.split(":")
    return getattr(import_module(module), attribute)


_REGISTRY: dict[str, Experiment] = {}
_BUILTINS_LOADED = False


def register_experiment(experiment: Experiment, overwrite: bool = False) -> Experiment:
    if experiment.name in _REGISTRY and not overwrite:
        raise ValueError(f"experiment {experiment.name!r} is already registered")
    _REGISTRY[experiment.name] = experiment
    return experiment


def unregister_experiment(name: str) -> None:
    _REGISTRY.pop(name, None)


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        for name in BUILTIN:
            import_module(f"rsp_probe.experiments.{name}")


def experiments() -> dict[str, Experiment]:
    """Every registered experiment by name: the built-ins first, in BUILTIN order."""
    _load_builtins()
    return dict(_REGISTRY)


def list_experiments() -> list[str]:
    return list(experiments())


def get_experiment(name: str) -> Experiment:
    found = experiments().get(name)
    if found is None:
        from rsp_probe.errors import UsageError

        raise UsageError(f"unknown experiment {name!r}; registered: "
                         f"{', '.join(list_experiments())}")
    return found


def figure_names() -> tuple[str, ...]:
    """Every figure the registered experiments feed: each experiment's own figure in
    registry order, then the figures that combine runs."""
    registered = experiments().values()
    own = [e.figures[0] for e in registered if e.figures]
    rest = [name for e in registered for name in e.figures[1:]]
    return tuple(dict.fromkeys([*own, *rest]))
