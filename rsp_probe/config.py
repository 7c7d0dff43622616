"""Frozen configuration dataclasses, one small piece per concern.

The CLI builds its options from these fields (the `help` metadata becomes `--help`), and a
run directory's config.json is `asdict()` of the resolved pieces, so a run can always be
re-created from its config alone. No heavy imports here: `rsp-probe --help` reads this module.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from rsp_probe.errors import UsageError
from rsp_probe.registry import BACKENDS, LAWS

SCHEMA_VERSION = 1

PLACEMENTS = ("suffix", "prefix")
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")
# auto, then every registered backend (rsp_probe.backends, plugins), read when --help or a
# check asks; --help gives each its line (a plugin's too), auto's last
BACKEND_CHOICES = BACKENDS.choices(
    {"auto": "hf when it supports the model and every probe, else transformer-lens"})


def _opt(default, help, **extra):
    """A field of an option table: `help` becomes --help and the API docstring (with each
    choice's line where a registry fills the choices: rsp_probe.registry.Choices). `extra`:
    `choices`; `aliases` (more --flags, e.g. ("--n",)); `renamed_from` (old names, still
    accepted as --flags and keyword arguments with a one-line deprecation note)."""
    return field(default=default, metadata={"help": help, **extra})


def pass_k_option(default: tuple[int, ...]):
    """The Pass@k list of every experiment that reports Pass@k (one name for one concept)."""
    return _opt(default, "k values of Pass@k; those above --samples are left out, with a note",
                renamed_from=("k",))


@dataclass(frozen=True)
class ModelConfig:
    model: str | None = _opt(
        None, "local checkpoint directory or Hub id in the local HF cache (default: embedded model)"
    )
    dtype: str = _opt("auto", "float32 (auto on CPU), bfloat16 or float16 (auto on CUDA)",
                      choices=DTYPES)
    device: str = _opt("auto", "cpu, cuda or auto", choices=DEVICES)
    backend: str = _opt("auto", "", choices=BACKEND_CHOICES)
    revision: str | None = _opt(None, "Hub revision (branch, tag or commit) of a cached --model")
    trust_remote_code: bool = _opt(False, "allow a checkpoint's own modelling code "
                                   "(transformers' trust_remote_code)")


@dataclass(frozen=True)
class DataConfig:
    task: str = _opt("arithmetic", "built-in task (ignored when --dataset is given)",
                     choices=("arithmetic",))
    dataset: str | None = _opt(None, "local JSONL/Parquet file of problems, or a Hub id in the "
                               "local HF cache (presets: MATH-500, GSM8K, AIME 2024, MATH)")
    question_field: str | None = _opt(None, "dataset field holding the question")
    answer_field: str | None = _opt(None, "dataset field holding the reference answer; "
                                    "FIELD:boxed reads its last \\boxed{} (MATH solutions)")
    n_prompts: int = _opt(8, "number of prompts (problems): the first of the dataset or task",
                          aliases=("--limit",))
    split: str = _opt("test", "split of the built-in task or of a Hub dataset",
                      choices=("train", "validation", "test"))
    chat_template: str = _opt("auto", "auto (the tokenizer's when it has one), on, off, or a "
                              "Jinja FILE")
    prompt_template: str = _opt("auto", "plain, math-cot (reason step by step, answer in "
                                "\\boxed{}), few-shot:FILE (JSONL question/answer), a FILE "
                                "holding {question}, or auto (math-cot in a chat template, "
                                "else plain); grading follows its answer format")
    system_prompt: str | None = _opt(None, "system message of the chat template")
    shard: str | None = _opt(None, "I/N: only the prompts of shard I (0-based) of N, chosen by "
                             "prompt id; `rsp-probe merge` joins the shards' runs")


@dataclass(frozen=True)
class RSPConfig:
    rsp_tokens: tuple[int, ...] = _opt((4,), "k, the number of RSP vectors; a list compares "
                                       "several")
    law: str = _opt("gaussian", "where the RSP vectors come from (rsp_probe.laws, or a "
                    "plugin's law)", choices=LAWS.choices())
    sigma_scale: float = _opt(1.0, "multiplier on the fitted sigma (ablation)")
    placement: str = _opt("suffix", "suffix: after the question, before the answer cue; "
                          "prefix: after BOS, before the question", choices=PLACEMENTS)
    fixed_draw: bool = _opt(False, "one draw shared by every trajectory of the run (control)")
    soft_prompt: str | None = _opt(None, "a trained soft prompt (.safetensors from `rsp-probe "
                                   "tune-prompt`, or `default`: the one committed for the "
                                   "default model) for the trained laws and compare-prompts")


@dataclass(frozen=True)
class SamplingConfig:
    samples: int = _opt(4, "trajectories per prompt and condition (n of Pass@k)",
                        aliases=("--n",))
    temperature: float = _opt(0.7, "sampling temperature; 0 is greedy")
    top_p: float = _opt(1.0, "nucleus sampling threshold")
    max_new_tokens: int = _opt(64, "maximum generated tokens per trajectory")
    batch_size: int = _opt(32, "trajectories decoded together")
    seed: int = _opt(0, "run seed; every draw derives from (seed, prompt id, sample index)")


@dataclass(frozen=True)
class OutputConfig:
    out: str | None = _opt(None, "run directory to write (default: runs/<command>-<time>)")
    overwrite: bool = _opt(False, "replace a completed run at --out")
    quiet: bool = _opt(False, "no progress bar or progress lines")
    resume: bool = _opt(False, "continue the interrupted run at --out from its last complete "
                        "batch (same options)")
    workers: int = _opt(0, "run the prompts as N shards, one Ray worker and model each, then "
                        "merge them (needs rsp-probe[ray]); 0: in this process")
    ray_address: str | None = _opt(None, "the Ray cluster for the shards (e.g. auto or "
                                   "ray://HOST:10001); default: a local one of --workers CPUs")


@dataclass(frozen=True)
class Condition:
    """One arm of an experiment: how its trajectories are decoded and what is injected."""

    name: str
    rsp_tokens: int
    temperature: float
    top_p: float = 1.0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def n_samples(self, requested: int) -> int:
        """Greedy decoding without an RSP gives one trajectory however often it is repeated."""
        return 1 if self.greedy and self.rsp_tokens == 0 else requested


# The pieces every experiment command is configured by, in CLI and config.json order.
EXPERIMENT_PIECES = (ModelConfig, DataConfig, RSPConfig, SamplingConfig, OutputConfig)


def single_dose(command: str, rsp_tokens: tuple[int, ...]) -> int:
    """The one k of a command that runs a single dose; a list is refused, not cut to one k
    while config.json records them all."""
    if len(rsp_tokens) != 1:
        raise UsageError(f"{command} takes one --rsp-tokens value, got "
                         f"{','.join(map(str, rsp_tokens)) or 'none'}")
    return rsp_tokens[0]


def check_ranges(rsp: RSPConfig, sampling: SamplingConfig, data: DataConfig,
                 output: OutputConfig | None = None) -> None:
    """Validate numbers before any model is loaded or any file is written."""
    from rsp_probe.validation import check_piece

    for piece in (rsp, sampling, data, output):
        if piece is not None:
            check_piece(piece)  # the types first: the API passes anything
    for flag, value in (("--sigma-scale", rsp.sigma_scale), ("--temperature", sampling.temperature),
                        ("--top-p", sampling.top_p)):
        if not math.isfinite(value):  # nan compares False to every bound below
            raise UsageError(f"{flag} must be a finite number, got {value}")
    if not rsp.rsp_tokens:
        raise UsageError("--rsp-tokens needs at least one value")
    if any(k < 0 for k in rsp.rsp_tokens):
        raise UsageError(f"--rsp-tokens must be >= 0, got {list(rsp.rsp_tokens)}")
    if rsp.sigma_scale < 0:
        raise UsageError(f"--sigma-scale must be >= 0, got {rsp.sigma_scale}")
    if sampling.temperature < 0:
        raise UsageError(f"--temperature must be >= 0, got {sampling.temperature}")
    if not 0 < sampling.top_p <= 1:
        raise UsageError(f"--top-p must be in (0, 1], got {sampling.top_p}")
    if sampling.samples < 1:
        raise UsageError(f"--samples must be >= 1, got {sampling.samples}")
    if sampling.max_new_tokens < 1:
        raise UsageError(f"--max-new-tokens must be >= 1, got {sampling.max_new_tokens}")
    if sampling.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {sampling.batch_size}")
    if data.shard is not None:
        parse_shard(data.shard)
    if data.n_prompts < 1:
        raise UsageError(f"--n-prompts must be >= 1, got {data.n_prompts}")
    if output is not None and output.out is not None and not output.out.strip():
        raise UsageError("--out must name a directory, got an empty string")
    if output is not None and output.workers < 0:
        raise UsageError(f"--workers must be >= 0, got {output.workers}")


# run-config keys renamed after runs were written with the old name: new name -> old name
RENAMED_KEYS = {"pass_k": ("k", "ks")}  # passk and friends wrote k; train-rl wrote ks
_MISSING = object()


def config_value(config: dict, key: str, default=_MISSING):
    """A run config's value, read under its old name in runs written before a rename."""
    if key not in config:
        for old in RENAMED_KEYS.get(key, ()):
            if old in config:
                return config[old]
    if default is _MISSING:
        return config[key]
    return config.get(key, default)


def to_dict(*pieces) -> dict:
    """Merge config pieces into one flat JSON-ready dict (tuples become lists)."""
    merged: dict = {}
    for piece in pieces:
        for key, value in dataclasses.asdict(piece).items():
            merged[key] = list(value) if isinstance(value, tuple) else value
    return merged


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """--shard I/N as (I, N), 0 <= I < N."""
    if text is None:
        return None
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard must look like I/N (e.g. 0/4), got {text!r}") from None
    if not 0 <= index < count:
        raise UsageError(f"--shard {text}: I must be in 0..N-1")
    return index, count
