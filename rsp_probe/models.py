"""Model loading, whatever the backend: one function loads every model.

`load_model` resolves a local directory or a Hub id from the local cache (never the network),
picks the device and dtype, checks the checkpoint's files (rsp_probe.preflight), and hands the
directory to the backend named in rsp_probe.registry.BACKENDS (rsp_probe/backends/), which
boots the model and checks that its cached decoding agrees with a full forward pass.

Imports run one way: models -> backends, preflight; a backend reads the checkpoint through
rsp_probe.backends.checkpoint (ModelInfo, the tokenizer, the weights' hash), never through
this module. ModelInfo, load_tokenizer and weights_sha256 are re-exported here for callers.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from rsp_probe.backends import backend_loader
from rsp_probe.backends.checkpoint import (  # noqa: F401 (re-exported)
    ModelInfo,
    load_tokenizer,
    weights_sha256,
)
from rsp_probe.errors import ModelNotFoundError, UsageError
from rsp_probe.preflight import check_checkpoint

if TYPE_CHECKING:
    from rsp_probe.backends.base import Backend

DEFAULT_MODEL_DIR = Path(__file__).parent / "default_model"
DEFAULT_MODEL_NAME = "rsp-probe/arithmetic-toy"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_model_path(spec: str | None, revision: str | None = None
                       ) -> tuple[Path, str, str | None]:
    """Map --model to (local directory, display name, revision) without touching the network;
    `revision` (a branch, tag or commit) picks a cached snapshot of a Hub id."""
    if revision is not None and (spec is None or Path(spec).expanduser().exists()):
        raise UsageError(f"--revision {revision}: applies to a Hub id in the local cache, not "
                         f"to {'the embedded model' if spec is None else 'a local directory'}")
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
    return _resolve_from_hf_cache(spec, revision)


def _resolve_from_hf_cache(repo_id: str, revision: str | None = None
                           ) -> tuple[Path, str, str | None]:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        snapshot = Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        at = f" at revision {revision}" if revision else ""
        flag = f" --revision {revision}" if revision else ""
        raise ModelNotFoundError(
            f"{repo_id}: not a local directory and not in the local Hugging Face cache{at} "
            f"(download it first: `hf download {repo_id}{flag}`)") from None
    if not (snapshot / "config.json").exists():
        raise ModelNotFoundError(f"{repo_id}: cached snapshot {snapshot} has no config.json")
    return snapshot, repo_id, snapshot.name


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    return torch.device(device)


@contextmanager
def one_thread_on_cpu(device):
    """Training on one CPU thread: multi-threaded reductions differ in the last bits from run
    to run, and a trained prompt or policy must be a function of its seed (a resumed run must
    repeat an uninterrupted one exactly)."""
    if torch.device(device).type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        raise UsageError(f"--dtype must be one of auto, {', '.join(_DTYPES)}; got {dtype}")
    return _DTYPES[dtype]


def load_model(model: str | None = None, dtype: str = "auto", device: str = "auto",
               self_test: bool = True, backend: str = "auto",
               revision: str | None = None, trust_remote_code: bool = False) -> Backend:
    """Load a model for probing behind `backend`: auto (the default, as on the command line)
    is the fast Hugging Face backend when it takes the model, else the TransformerLens
    bridge; any other name is a backend of rsp_probe.registry.BACKENDS (hf,
    transformer-lens, or one a plugin registered). Raises UsageError subclasses with one-line
    messages (no such directory, not in the cache, KV-cache self-test failed).
    trust_remote_code: let transformers run the checkpoint's own modelling code."""
    loader = backend_loader(backend)
    path, name, revision = resolve_model_path(model, revision)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    check_checkpoint(path)  # one line for a BERT, a truncated file, a missing tokenizer
    remote = {"trust_remote_code": True} if trust_remote_code else {}  # loaders' default: off
    return loader(path, name, revision, torch_dtype, torch_device, self_test=self_test, **remote)
