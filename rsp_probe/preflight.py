"""Checks that need no model, run before the slow load: the checkpoint's files are what a
causal LM needs (config.json, a tokenizer, whole weight files), and the context length its
config.json declares. rsp_probe.models.load_model runs check_checkpoint before any backend;
an experiment's own model-free checks (its prompts fit, its law's inputs) build on these in
rsp_probe.experiments.preflight. Nothing of the model is loaded here."""

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
