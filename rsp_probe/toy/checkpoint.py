"""Random Hugging Face checkpoints (Qwen2, Llama, or any family in toy/families.py) for
tests, benchmarks and training.

A real architecture saved with `save_pretrained`, so every code path that loads a real
model loads these too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ToyArchitecture:
    family: str = "qwen2"  # a key of rsp_probe.toy.families.FAMILY_CLASSES
    n_layers: int = 2
    d_model: int = 64
    n_heads: int = 4
    n_kv_heads: int = 2
    d_mlp: int = 128
    n_ctx: int = 512
    initializer_range: float = 0.02  # tests use ~0.4 so outputs depend on the context


def build_model(arch: ToyArchitecture, vocab_size: int, bos_id: int, eos_id: int, seed: int):
    import torch

    from rsp_probe.toy.families import family_model

    torch.manual_seed(seed)
    return family_model(arch.family, arch, vocab_size, bos_id, eos_id)


def save_random_checkpoint(out_dir: Path, arch: ToyArchitecture, tokenizer_dir: Path,
                           seed: int = 0) -> Path:
    """Write a randomly initialised checkpoint plus the tokenizer from `tokenizer_dir`."""
    from transformers import AutoTokenizer

    out_dir = Path(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    model = build_model(arch, len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id, seed)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return out_dir
