"""load_model on real tiny checkpoints: metadata, tokenizer fidelity, offline resolution of
paths and Hub ids, dtypes, and the KV-cache self-test against a reproduced 5.24-style bug."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
import time
from importlib import metadata

import pytest
import torch

from rsp_probe.backends.transformer_lens import kv_cache_self_test
from rsp_probe.errors import KVCacheSelfTestError, ModelNotFoundError, UsageError
from rsp_probe.models import load_model

ROUND_TRIP_TEXTS = [
    "Mia has 12 pencils.  She buys 7 more.",
    "line one\nline two\n\n  indented\tand tabbed",
    "12 + 7 = 19. 19 - 5 = 14. #### 14",
    "0123456789 9876543210 3.14 -42 1/2",
    "  leading and trailing spaces  ",
    "####\n####",
]


@pytest.fixture(scope="module")
def loaded(request, tiny_checkpoint):
    if tiny_checkpoint == request.getfixturevalue("tiny_qwen2"):
        return request.getfixturevalue("loaded_qwen2"), tiny_checkpoint
    return load_model(str(tiny_checkpoint), backend="transformer-lens"), tiny_checkpoint


def test_metadata_matches_the_checkpoint(loaded):
    model, path = loaded
    config = json.loads((path / "config.json").read_text())
    info = model.info
    assert (info.n_layers, info.n_heads, info.d_model, info.d_vocab, info.n_ctx) == (
        config["num_hidden_layers"], config["num_attention_heads"], config["hidden_size"],
        config["vocab_size"], config["max_position_embeddings"])
    assert info.weights_sha256 == hashlib.sha256((path / "model.safetensors").read_bytes()
                                                 ).hexdigest()
    assert info.revision is None
    assert info.name == info.path == str(path.resolve())
    assert (info.dtype, info.device) == ("float32", "cpu")
    assert tuple(model.embedding_table.shape) == (info.d_vocab, info.d_model)
    assert model.tokenizer.eos_token_id in model.eos_token_ids
    assert json.loads(json.dumps(info.to_dict())) == info.to_dict()  # JSON-ready for config.json


@pytest.mark.parametrize("text", ROUND_TRIP_TEXTS)
def test_tokenizers_round_trip_text_exactly(loaded, text):
    """Both our tokenizer and the one the bridge ended up with (Qwen2Tokenizer re-applies
    Qwen's pre-tokenization to a qwen2 checkpoint): spaces and newlines must survive."""
    model, _ = loaded
    for tokenizer in (model.tokenizer, model.bridge.tokenizer):
        ids = tokenizer(text, add_special_tokens=False).input_ids
        assert tokenizer.decode(ids) == text, type(tokenizer).__name__
    assert (model.bridge.tokenizer(text, add_special_tokens=False).input_ids
            == model.tokenizer(text, add_special_tokens=False).input_ids)


def test_healthy_model_passes_the_kv_self_test(loaded):
    model, _ = loaded
    diff = kv_cache_self_test(model)
    assert 0 <= diff < 1e-3


def _never_write_the_cache(monkeypatch):
    """Reproduce transformers 5.24 + TransformerLens 4.3: the cache is never written, so a
    decode step attends only to itself."""
    from transformers.cache_utils import DynamicLayer

    monkeypatch.setattr(DynamicLayer, "update",
                        lambda self, key_states, value_states, *a, **kw: (key_states,
                                                                          value_states))


def test_broken_kv_cache_is_refused(loaded, monkeypatch):
    model, path = loaded
    _never_write_the_cache(monkeypatch)
    with pytest.raises(KVCacheSelfTestError, match="KV-cache self-test failed"):
        kv_cache_self_test(model)
    with pytest.raises(KVCacheSelfTestError):
        load_model(str(path), backend="transformer-lens")
    assert issubclass(KVCacheSelfTestError, UsageError)  # the CLI prints it as one line


def test_bfloat16_loads_and_passes_the_self_test(tiny_qwen2, loaded_qwen2):
    model = load_model(str(tiny_qwen2), dtype="bfloat16", backend="transformer-lens")
    assert model.info.dtype == "bfloat16" and model.dtype == torch.bfloat16
    assert model.embedding_table.dtype == torch.bfloat16
    torch.testing.assert_close(model.embedding_table.float(),
                               loaded_qwen2.embedding_table.bfloat16().float(), rtol=0, atol=0)
    assert kv_cache_self_test(model) < 0.05


def test_missing_path_names_the_path(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelNotFoundError, match=re.escape(str(missing))):
        load_model(str(missing), backend="transformer-lens")


def test_directory_without_config_is_refused(tmp_path, tiny_qwen2):
    for name in ("model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_qwen2 / name, tmp_path / name)
    with pytest.raises(ModelNotFoundError, match="config.json"):
        load_model(str(tmp_path), backend="transformer-lens")


def test_file_instead_of_directory_is_refused(tiny_qwen2):
    with pytest.raises(ModelNotFoundError, match="is a file"):
        load_model(str(tiny_qwen2 / "config.json"), backend="transformer-lens")


def test_bad_dtype_and_device_are_usage_errors(tiny_qwen2):
    with pytest.raises(UsageError, match="--dtype"):
        load_model(str(tiny_qwen2), dtype="float64", backend="transformer-lens")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="--device cuda"):
            load_model(str(tiny_qwen2), device="cuda", backend="transformer-lens")


# -- Hub ids: resolved from the local cache only -----------------------------------------------

@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty local Hugging Face cache. huggingface_hub reads HF_HUB_CACHE into
    `constants.HF_HUB_CACHE` at import time and snapshot_download reads the constant at call
    time, so the constant is what must change; the environment follows for subprocesses."""
    import huggingface_hub.constants

    cache = tmp_path / "hf-home" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(cache.parent))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def no_network(monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    with pytest.raises(OSError, match="offline test"):  # the guard itself works
        socket.create_connection(("127.0.0.1", 9))
    attempts.clear()
    return attempts


def test_uncached_hub_id_fails_at_once_without_network(hf_cache, no_network, monkeypatch):
    import huggingface_hub.constants

    # Must not rely on offline mode (conftest sets it, huggingface_hub read it at import).
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    start = time.perf_counter()
    with pytest.raises(ModelNotFoundError) as caught:
        load_model("nobody/not-a-model", backend="transformer-lens")
    assert time.perf_counter() - start < 5
    assert no_network == []
    message = str(caught.value)
    assert "nobody/not-a-model" in message
    assert "not in the local Hugging Face cache" in message
    assert "download" in message and "\n" not in message


def test_download_hint_names_an_installed_command(hf_cache):
    with pytest.raises(ModelNotFoundError) as caught:
        load_model("nobody/not-a-model", backend="transformer-lens")
    hint = re.search(r"`([^`]+)`", str(caught.value))
    assert hint, str(caught.value)
    program = hint.group(1).split()[0]
    hub_scripts = {ep.name for ep in metadata.distribution("huggingface_hub").entry_points
                   if ep.group == "console_scripts"}
    assert program in hub_scripts, (program, hub_scripts)
    assert hint.group(1).endswith("download nobody/not-a-model")


def _cache_snapshot(cache, repo_id, checkpoint, commit="0123456789abcdef0123456789abcdef01234567"):
    """The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<commit>/}."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(checkpoint, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)  # no newline, as huggingface_hub writes it
    return repo / "snapshots" / commit, commit


def test_cached_hub_id_resolves_and_records_its_revision(hf_cache, no_network, tiny_qwen2,
                                                         loaded_qwen2):
    snapshot, commit = _cache_snapshot(hf_cache, "tiny-org/tiny-qwen2", tiny_qwen2)
    model = load_model("tiny-org/tiny-qwen2", backend="transformer-lens")
    assert no_network == []
    assert model.info.revision == commit
    assert model.info.name == "tiny-org/tiny-qwen2"
    assert model.info.path == str(snapshot)
    assert model.info.weights_sha256 == loaded_qwen2.info.weights_sha256
    torch.testing.assert_close(model.embedding_table, loaded_qwen2.embedding_table, rtol=0, atol=0)


def test_cached_snapshot_without_config_is_refused(hf_cache, tiny_qwen2, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(tiny_qwen2, partial)
    (partial / "config.json").unlink()
    _cache_snapshot(hf_cache, "tiny-org/partial", partial)
    with pytest.raises(ModelNotFoundError, match="config.json"):
        load_model("tiny-org/partial", backend="transformer-lens")
