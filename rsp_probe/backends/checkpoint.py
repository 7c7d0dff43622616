"""What every backend reads from a checkpoint directory: the tokenizer, the context length,
the weights' hash, and the ModelInfo a run records about the model it measured.

Backends import this module and never rsp_probe.models (which imports the backends to load
one), so loading has no import cycle. No torch here: the backends pass their torch dtype
and device in, and only their names are recorded.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from rsp_probe.errors import UsageError

_HASH_LIMIT_BYTES = 512 * 2**20  # hash weights up to this size; larger ones rely on revision


@dataclass(frozen=True)
class ModelInfo:
    """What a run records about the model it measured."""

    name: str
    path: str
    n_layers: int
    n_heads: int
    d_model: int
    d_vocab: int
    n_ctx: int
    revision: str | None  # Hub commit of a cached snapshot, else None
    weights_sha256: str | None  # sha256 over the weight files, when small enough to hash
    dtype: str
    device: str

    def to_dict(self) -> dict:
        return asdict(self)


def model_info(path: Path, name: str, revision: str | None, n_layers: int, n_heads: int,
               d_model: int, d_vocab: int, n_ctx: int, dtype, device) -> ModelInfo:
    """What config.json records about a loaded model, for any backend (`dtype` and `device`
    are torch's; their names are recorded)."""
    return ModelInfo(name=name, path=str(path), n_layers=n_layers, n_heads=n_heads,
                     d_model=d_model, d_vocab=d_vocab, n_ctx=n_ctx, revision=revision,
                     weights_sha256=weights_sha256(path),
                     dtype=str(dtype).removeprefix("torch."), device=str(device))


def weights_sha256(path: Path) -> str | None:
    files = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin"))
    if not files or sum(f.stat().st_size for f in files) > _HASH_LIMIT_BYTES:
        return None
    digest = hashlib.sha256()
    for file in files:
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def context_length(path: Path, fallback: int) -> int:
    hf_config = json.loads((path / "config.json").read_text())
    return int(hf_config.get("max_position_embeddings") or fallback)


def load_tokenizer(path: Path, trust_remote_code: bool = False):
    """Every backend's tokenizer: damaged files are one UsageError line, not a traceback."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True,
                                                  trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError) as err:
        refuse_remote_code(path, err)
        raise UsageError(f"{path}: the tokenizer cannot be loaded ({one_line(err)})") from None
    if len(tokenizer) == 0:
        raise UsageError(f"{path}: the tokenizer is empty (damaged tokenizer files?)")
    return tokenizer


def refuse_remote_code(path: Path, err: BaseException) -> None:
    """transformers' many-line refusal of a checkpoint's own code, as one line."""
    if "trust_remote_code" in str(err):
        raise UsageError(f"{path}: the checkpoint ships its own modelling code, which runs "
                         "only with --trust-remote-code (pass it for code you trust)") from None


def one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


@contextmanager
def no_hf_progress_bars():
    """transformers' loading and saving draw progress bars; a command's output is ours."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()
