"""Checks that need no model, run before the slow load: the checkpoint's files are what a
causal LM needs, and every prompt (with its RSP) fits the context. Only the tokenizer and
config.json are read here."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from rsp_probe.errors import UsageError

CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt",
                   "spiece.model")
# Bidirectional encoders: without `architectures`, their model_type is all config.json says.
ENCODER_TYPES = {"bert", "roberta", "distilbert", "albert", "electra", "deberta", "deberta-v2",
                 "xlm-roberta", "camembert", "mpnet", "modernbert"}
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "n_ctx", "seq_length")


def check_checkpoint(path: Path) -> dict:
    """Refuse, with one line, what transformers would load into a traceback or garbage."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UsageError(f"{path}: config.json cannot be read ({err})") from None
    architectures = config.get("architectures") or []
    encoder = (not any(a.endswith(CAUSAL_SUFFIXES) for a in architectures) if architectures
               else config.get("model_type") in ENCODER_TYPES and not config.get("is_decoder"))
    if encoder:
        what = ", ".join(architectures) or f"model_type {config.get('model_type')!r}"
        raise UsageError(f"{path}: {what} is not a causal (decoder-only) language model; "
                         "rsp-probe generates text and needs one")
    if not any((path / name).exists() for name in TOKENIZER_FILES):
        raise UsageError(f"{path}: no tokenizer files (looked for {', '.join(TOKENIZER_FILES)})")
    weights = sorted(path.glob("*.safetensors"))
    if not weights and not any(path.glob("*.bin")):
        raise UsageError(f"{path}: no weight files (*.safetensors or *.bin)")
    for file in weights:
        _check_safetensors(file)
    return config


def _check_safetensors(file: Path) -> None:
    """The header must parse and the data it describes must fill the file exactly."""
    size = file.stat().st_size
    try:
        with open(file, "rb") as handle:
            (header_size,) = struct.unpack("<Q", handle.read(8))
            if header_size > size - 8:
                raise ValueError("header longer than the file")
            header = json.loads(handle.read(header_size))
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"),
                  default=0)
    except (struct.error, ValueError, KeyError, TypeError, IndexError):
        raise UsageError(f"{file}: empty, truncated or not a safetensors file "
                         f"({size} bytes)") from None
    if 8 + header_size + end != size:
        raise UsageError(f"{file}: truncated or damaged ({size} bytes, its header describes "
                         f"{8 + header_size + end})")


def context_length(config: dict) -> int | None:
    for key in CONTEXT_KEYS:
        if isinstance(config.get(key), int):
            return config[key]
    return None


def check_prompts_fit(problems, tokenizer, n_ctx: int | None, k: int, placement: str,
                      data) -> None:
    """The prompt options (`data`, a DataConfig) must fit the tokenizer, and the longest
    input of each prompt (its largest k) must leave room to generate."""
    from rsp_probe.rsp import place_rsp
    from rsp_probe.tasks.prompts import encode_problem, prompt_format

    fmt = prompt_format(tokenizer, data)  # a misused --chat-template is one line, here
    if n_ctx is None:
        return
    if k >= n_ctx:  # before building any input of k positions (k may be 10^9)
        raise UsageError(f"--rsp-tokens {k} does not fit the model's context of {n_ctx} "
                         "with room to generate")
    for problem in problems:
        ids, _ = place_rsp(encode_problem(tokenizer, problem, fmt), k, placement)
        if len(ids) >= n_ctx:
            raise UsageError(f"prompt {problem.id}: {len(ids)} input positions (RSP included) "
                             f"do not fit the model's context of {n_ctx} with room to generate")


def preflight(spec, problems, model=None) -> None:
    """Every model-free check of an experiment, before its model is loaded."""
    if model is not None:
        tokenizer, n_ctx = model.tokenizer, model.info.n_ctx
        d_model, identity = model.info.d_model, _identity(model.info.name,
                                                          model.info.weights_sha256,
                                                          model.info.revision)
    else:
        from rsp_probe.models import load_tokenizer, resolve_model_path

        path, name, revision = resolve_model_path(spec.model.model, spec.model.revision)
        config = check_checkpoint(path)
        n_ctx = context_length(config)
        tokenizer = load_tokenizer(path, spec.model.trust_remote_code)
        d_model, identity = config.get("hidden_size"), lambda: _identity_of(path, name, revision)
    check_prompts_fit(problems, tokenizer, n_ctx, max(spec.rsp.rsp_tokens), spec.rsp.placement,
                      spec.data)
    check_law_inputs(spec.rsp, d_model, identity)


def check_law_inputs(rsp, d_model: int | None, identity) -> None:
    """A law that needs a soft prompt (--law trained) needs --soft-prompt; a soft prompt must
    fit the model and the run (rsp_probe.soft_prompts.io.check_soft_prompt). `identity` is
    called only when needed (hashing the weights takes a moment)."""
    from rsp_probe.registry import LAWS

    if LAWS.get(rsp.law).needs_soft_prompt and not rsp.soft_prompt:
        raise UsageError(f"--law {rsp.law} needs --soft-prompt FILE (from `rsp-probe "
                         "tune-prompt`)")
    if rsp.soft_prompt:
        from rsp_probe.soft_prompts.io import check_soft_prompt

        check_soft_prompt(rsp.soft_prompt, d_model, identity(), rsp.placement, rsp.rsp_tokens)


def _identity(name, sha256, revision):
    from rsp_probe.soft_prompts.io import model_identity

    return lambda: model_identity(name, sha256, revision)


def _identity_of(path: Path, name: str, revision: str | None) -> dict:
    from rsp_probe.models import weights_sha256
    from rsp_probe.soft_prompts.io import model_identity

    return model_identity(name, weights_sha256(path), revision)
