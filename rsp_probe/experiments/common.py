"""What every experiment shares: configs -> problems -> jobs -> trajectories -> run directory."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from rsp_probe.config import (
    EXPERIMENT_PIECES,
    Condition,
    DataConfig,
    ModelConfig,
    OutputConfig,
    RSPConfig,
    SamplingConfig,
    check_ranges,
    parse_shard,
    to_dict,
)
from rsp_probe.errors import UsageError
from rsp_probe.experiments.preflight import preflight
from rsp_probe.runs import RunWriter, prepare_out, resolve_out
from rsp_probe.validation import check_piece

LOG = logging.getLogger("rsp_probe")


@dataclass(frozen=True)
class Spec:
    """The resolved configuration of one experiment."""

    command: str
    model: ModelConfig
    data: DataConfig
    rsp: RSPConfig
    sampling: SamplingConfig
    output: OutputConfig
    extra: tuple[tuple[str, object], ...] = ()  # command-specific options

    def option(self, name: str):
        return dict(self.extra)[name]

    def to_dict(self) -> dict:
        return {"command": self.command,
                **to_dict(self.model, self.data, self.rsp, self.sampling, self.output),
                **{key: list(v) if isinstance(v, tuple) else v for key, v in self.extra}}


def build_spec(command: str, extra: dict | None = None, **options) -> Spec:
    """Spread keyword options over the config pieces; unknown names are an error."""
    if isinstance(options.get("rsp_tokens"), int):
        options["rsp_tokens"] = (options["rsp_tokens"],)
    pieces = []
    for piece in EXPERIMENT_PIECES:
        names = {f.name for f in dataclasses.fields(piece)}
        pieces.append(piece(**{k: options.pop(k) for k in list(options) if k in names}))
    if options:
        raise UsageError(f"unknown option(s) for {command}: {', '.join(sorted(options))}")
    spec = Spec(command, *pieces, extra=tuple(sorted((extra or {}).items())))
    check_piece(spec.model)
    check_ranges(spec.rsp, spec.sampling, spec.data, spec.output)
    extra = clip_pass_k(dict(spec.extra), spec.sampling)  # samples known good now
    return dataclasses.replace(spec, extra=tuple(sorted(extra.items())))


def clip_pass_k(extra: dict, sampling: SamplingConfig) -> dict:
    """The Pass@k list without the k above the samples per prompt (a default list then fits
    `--samples 2`), with one note naming what was left out."""
    if "pass_k" not in extra:
        return extra
    ks = tuple(extra["pass_k"])
    if not ks or min(ks) < 1:
        raise UsageError(f"--pass-k values must be >= 1, got {list(ks)}")
    kept = tuple(k for k in ks if k <= sampling.samples)
    if kept != ks:
        left_out = ", ".join(str(k) for k in ks if k > sampling.samples)
        LOG.warning(f"Pass@k: k = {left_out} left out (more than the {sampling.samples} samples "
                    f"per prompt); reporting k = {', '.join(map(str, kept))}")
    return {**extra, "pass_k": kept}


def default_out(command: str) -> Path:
    return Path("runs") / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}"


def load_problems(data: DataConfig):
    """The built-in arithmetic task, a local dataset file or a cached Hub dataset (org/name),
    first n_prompts problems."""
    if data.dataset:
        from rsp_probe.tasks.hub import load_dataset_problems

        problems = load_dataset_problems(data.dataset, data.split, data.n_prompts,
                                         data.question_field, data.answer_field)
    else:
        from rsp_probe.tasks.arithmetic import DEFAULT_TASK, generate

        problems = generate(DEFAULT_TASK, data.split, data.n_prompts, seed=0)
    if not problems:
        raise UsageError(f"{data.dataset or data.task}: no problems to run")
    if len(problems) < data.n_prompts:  # never cut silently: config.json records n_prompts
        raise UsageError(f"--n-prompts {data.n_prompts}: "
                         f"{data.dataset or data.task} has only {len(problems)} problems")
    return problems[:data.n_prompts]


def shard_problems(problems: list, shard: str | None) -> list:
    """Shard I of N holds prompts I, I+N, I+2N, ...: by prompt, so every condition and sample
    of a prompt (a paired comparison) stays in one shard, and `merge` knows the order."""
    parsed = parse_shard(shard)
    if parsed is None:
        return problems
    index, count = parsed
    chosen = problems[index::count]
    if not chosen:
        raise UsageError(f"--shard {shard}: no prompts (only {len(problems)} in the run)")
    return chosen


class Session:
    """A loaded model plus the run being written; closes the run on success or failure."""

    def __init__(self, spec: Spec, model=None, write: bool = True):
        """write=False: problems and model only, for a measurement that saves no run (the
        model card): no --out is claimed, so no lock file is left behind."""
        self.spec = spec
        self.out = resolve_out(spec.output.out or default_out(spec.command))
        # Lock --out and run every model-free check before the slow load (experiments/preflight.py);
        # the lock is held until the run is published or abandoned.
        self.lock = prepare_out(self.out, spec.output.overwrite) if write else None
        try:
            self.problems = shard_problems(load_problems(spec.data), spec.data.shard)
            preflight(spec, self.problems, model)
            self.model = model if model is not None else _load(spec.model)
        except BaseException:
            if self.lock is not None:
                self.lock.release()
            raise
        self.writer: RunWriter | None = None
        self._progress = None

    @property
    def prompt_format(self):
        """The resolved template, chat template and system prompt (config.json "prompt")."""
        from rsp_probe.tasks.prompts import prompt_format

        return prompt_format(self.model.tokenizer, self.spec.data)

    def __enter__(self):
        if self.lock is None:
            raise RuntimeError("a Session made with write=False writes no run")
        config = {**self.spec.to_dict(), "out": str(self.out), "model_info":
                  {**self.model.info.to_dict(), "backend": self.model.name},
                  "prompt": self.prompt_format.to_dict()}
        self.writer = RunWriter(self.out, config, overwrite=self.spec.output.overwrite,
                                lock=self.lock, resume=self.spec.output.resume)
        return self

    def __exit__(self, kind, error, traceback):
        self.close_progress()
        if isinstance(error, KeyboardInterrupt):  # the finished batches stay for --resume
            self.writer.suspend()
        elif isinstance(error, UsageError):  # bad input found late: nothing to inspect
            self.writer.discard()
        elif error is not None:
            self.writer.abort({"device": self.model.info.device},
                              reason=f"{kind.__name__}: {error}")
        return False

    def finish(self, summary: dict | None = None):
        from rsp_probe.figures.render import draw_run_figure
        from rsp_probe.runs import open_run

        self.close_progress()  # the decoding is over; the summary comes next
        draw_run_figure(self.spec.command, self.writer.staged_run())
        meta = {"device": self.model.info.device, "dtype": self.model.info.dtype,
                **(summary or {})}
        return open_run(self.writer.finish(meta))

    @property
    def progress(self):
        """The run's Progress (rsp_probe.progress), shared by every decoding phase; None
        when --quiet. Closed when the run is published or abandoned."""
        if self.spec.output.quiet:
            return None
        if self._progress is None:
            from rsp_probe.progress import Progress

            self._progress = Progress(self.spec.command)
        return self._progress

    def plan_progress(self, conditions_samples) -> None:
        """Announce the run's trajectories up front (experiments decoding in phases):
        `conditions_samples` is [(Condition, samples requested)], each run on every prompt."""
        if self.progress is not None:
            n = len(self.problems)
            total = sum(n * c.n_samples(s) for c, s in conditions_samples)
            self.progress.plan(total, self.spec.sampling.max_new_tokens)

    def close_progress(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None


def _load(model: ModelConfig):
    from rsp_probe.models import load_model

    return load_model(model.model, dtype=model.dtype, device=model.device,
                      backend=model.backend, revision=model.revision,
                      trust_remote_code=model.trust_remote_code)


def conditions_by_k(spec: Spec) -> list[Condition]:
    """Baseline k=0 and each requested k, at the run's temperature: `k0`, `k4`, ..."""
    ks = sorted({0, *spec.rsp.rsp_tokens})
    return [Condition(f"k{k}", k, spec.sampling.temperature, spec.sampling.top_p) for k in ks]


def named_conditions(names: tuple[str, ...], spec: Spec) -> list[Condition]:
    """Parse condition names made of `greedy` or `temp`, optionally `+rsp` (either order):
    temp = temperature sampling, k=0; temp+rsp = the same with the --rsp-tokens k;
    greedy = temperature 0, k=0; greedy+rsp = temperature 0 with a fresh draw per sample.
    One dose per run: several k would share one condition name (run once per k instead)."""
    doses = sorted(set(spec.rsp.rsp_tokens) - {0})
    if len(doses) > 1:
        raise UsageError(f"{spec.command} compares one RSP dose per run, got --rsp-tokens "
                         f"{' '.join(map(str, doses))}; run it once per k")
    k = doses[0] if doses else 0
    conditions = []
    for name in names:
        parts = set(name.split("+"))
        if parts not in ({"temp"}, {"temp", "rsp"}, {"greedy"}, {"greedy", "rsp"}):
            raise UsageError(f"unknown condition {name!r}; expected temp, temp+rsp, greedy "
                             "or greedy+rsp")
        if "rsp" in parts and k == 0:
            raise UsageError(f"condition {name!r} needs --rsp-tokens above 0")
        temperature = 0.0 if "greedy" in parts else spec.sampling.temperature
        conditions.append(Condition(name, k if "rsp" in parts else 0, temperature,
                                    spec.sampling.top_p))
    if len({c.name for c in conditions}) != len(conditions):
        raise UsageError(f"duplicate condition in {','.join(names)}")
    return conditions


def announce(n_prompts: int, n_trajectories: int, conditions: list[Condition], max_new: int,
             quiet: bool) -> None:
    """The size of the work before it starts: prompts x samples x conditions x steps, as
    an INFO record of the `rsp_probe` logger (the CLI shows those on stderr)."""
    if quiet:
        return
    names = ", ".join(c.name for c in conditions)
    LOG.info(f"{n_prompts} prompts x {len(conditions)} conditions ({names}) = {n_trajectories} "
             f"trajectories, up to {max_new} new tokens each (<= {n_trajectories * max_new} "
             "decoding steps)")
