"""Model loading: the ONLY module that imports transformer_lens.

`load_model` resolves a local directory or a Hub id from the local cache (never the network),
boots a TransformerBridge around the Hugging Face model, and refuses to return a model whose
cached decoding disagrees with a full forward pass (transformers 5.24 silently breaks the
KV cache of TransformerLens 4.3; see shared/notes/transformer-lens.md).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from rsp_probe.errors import KVCacheSelfTestError, ModelNotFoundError, UsageError
from rsp_probe.preflight import check_checkpoint, load_checked_tokenizer

DEFAULT_MODEL_DIR = Path(__file__).parent / "default_model"
DEFAULT_MODEL_NAME = "rsp-probe/arithmetic-toy"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_HASH_LIMIT_BYTES = 512 * 2**20  # hash weights up to this size; larger ones rely on revision
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


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


@dataclass
class LoadedModel:
    bridge: object  # transformer_lens.model_bridge.TransformerBridge
    tokenizer: object  # our own copy: the bridge may reconfigure the one it holds
    info: ModelInfo
    dtype: torch.dtype
    device: torch.device

    @property
    def embedding_table(self) -> torch.Tensor:
        """The input-embedding table W_E, [d_vocab, d_model]."""
        return self.bridge.W_E

    @property
    def eos_token_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id}
        gen = getattr(self.bridge.original_model, "generation_config", None)
        extra = getattr(gen, "eos_token_id", None)
        ids |= set(extra) if isinstance(extra, (list, tuple)) else {extra}
        return {i for i in ids if i is not None}


def resolve_model_path(spec: str | None) -> tuple[Path, str, str | None]:
    """Map --model to (local directory, display name, revision) without touching the network."""
    if spec is None:
        if not (DEFAULT_MODEL_DIR / "config.json").exists():
            raise ModelNotFoundError(
                f"the embedded default model is missing from {DEFAULT_MODEL_DIR}; "
                "train it with `rsp-probe train-toy --out rsp_probe/default_model`")
        return DEFAULT_MODEL_DIR, DEFAULT_MODEL_NAME, None
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelNotFoundError(f"{spec}: directory has no config.json (not a HF checkpoint)")
        return path.resolve(), str(path.resolve()), None
    if path.exists():
        raise ModelNotFoundError(f"{spec}: is a file, expected a checkpoint directory")
    looks_like_path = spec.startswith((".", "/", "~")) or os.sep * 2 in spec
    if looks_like_path or not _HUB_ID.match(spec):
        raise ModelNotFoundError(f"{spec}: no such model directory")
    return _resolve_from_hf_cache(spec)


def _resolve_from_hf_cache(repo_id: str) -> tuple[Path, str, str | None]:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        snapshot = Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        raise ModelNotFoundError(
            f"{repo_id}: not a local directory and not in the local Hugging Face cache "
            f"(download it first: `hf download {repo_id}`)") from None
    if not (snapshot / "config.json").exists():
        raise ModelNotFoundError(f"{repo_id}: cached snapshot {snapshot} has no config.json")
    return snapshot, repo_id, snapshot.name


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        raise UsageError(f"--dtype must be one of auto, {', '.join(_DTYPES)}; got {dtype}")
    return _DTYPES[dtype]


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


def load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def load_model(model: str | None = None, dtype: str = "auto", device: str = "auto",
               self_test: bool = True) -> LoadedModel:
    """Load a model for probing. Raises UsageError subclasses with one-line messages."""
    path, name, revision = resolve_model_path(model)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    check_checkpoint(path)  # one line for a BERT, a truncated file, a missing tokenizer
    tokenizer = load_checked_tokenizer(path)
    bridge = _boot_bridge(path, tokenizer, torch_dtype, torch_device)
    bridge.eval()
    cfg = bridge.cfg
    info = ModelInfo(
        name=name, path=str(path), n_layers=cfg.n_layers, n_heads=cfg.n_heads,
        d_model=cfg.d_model, d_vocab=cfg.d_vocab, n_ctx=_context_length(path, cfg),
        revision=revision, weights_sha256=weights_sha256(path),
        dtype=str(torch_dtype).removeprefix("torch."), device=str(torch_device))
    loaded = LoadedModel(bridge, tokenizer, info, torch_dtype, torch_device)
    if self_test:
        kv_cache_self_test(loaded)
    return loaded


def _boot_bridge(path: Path, tokenizer, dtype: torch.dtype, device: torch.device):
    from transformer_lens.model_bridge import TransformerBridge

    try:
        with _no_progress_bars():  # stderr is for the one-line error, not "Loading weights"
            return TransformerBridge.boot_transformers(
                str(path), tokenizer=copy.deepcopy(tokenizer), dtype=dtype, device=str(device))
    except (OSError, ValueError, KeyError) as err:
        raise UsageError(f"{path}: cannot be loaded as a TransformerBridge model ({err})") from err


@contextlib.contextmanager
def _no_progress_bars():
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _context_length(path: Path, cfg) -> int:
    hf_config = json.loads((path / "config.json").read_text())
    return int(hf_config.get("max_position_embeddings") or cfg.n_ctx)


@torch.inference_mode()
def kv_cache_self_test(model: LoadedModel, n_tokens: int = 12, seed: int = 0) -> float:
    """Compare one cached decode step with a full forward pass; refuse on disagreement.

    Returns max |logit difference|. A broken cache (decode steps attending only to
    themselves) changes the logits by O(their scale), far above the tolerance.
    """
    bridge = model.bridge
    generator = torch.Generator().manual_seed(seed)
    n_tokens = min(n_tokens, model.info.n_ctx)
    ids = torch.randint(0, model.info.d_vocab, (1, n_tokens), generator=generator)
    ids = ids.to(model.device)
    _, cache = bridge(ids[:, :-1], return_type="logits_and_cache")
    cached = bridge(ids[:, -1:], return_type="logits_and_cache", past_key_values=cache)[0]
    full = bridge(ids, return_type="logits")
    cached_last, full_last = cached[0, -1].float(), full[0, -1].float()
    diff = (cached_last - full_last).abs().max().item()
    tolerance = 1e-3 if model.dtype == torch.float32 else 0.05 * (1 + full_last.abs().max().item())
    if not diff < tolerance:
        raise KVCacheSelfTestError(
            f"KV-cache self-test failed for {model.info.name}: a cached decode step differs "
            f"from a full forward pass by {diff:.3g} (tolerance {tolerance:.3g}); refusing to "
            "measure with a broken cache (is transformers 5.24.0 installed? see constraints.txt)")
    return diff
