"""--revision picks a cached snapshot; --trust-remote-code lets a checkpoint's own modelling
code run (refused in one line without it); a tokenizer's own chat template with a Hub
dataset, end to end offline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rsp_probe.errors import ModelNotFoundError, UsageError
from rsp_probe.models import load_model, resolve_model_path

MAIN, TAGGED = "1" * 40, "2" * 40


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def _cache(cache, repo_id, checkpoint, refs: dict[str, str]):
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    for ref, commit in refs.items():
        if not (repo / "snapshots" / commit).exists():
            shutil.copytree(checkpoint, repo / "snapshots" / commit)
        (repo / "refs" / ref).write_text(commit)
    return repo


def test_revision_picks_a_cached_snapshot(hf_cache, tiny_qwen2):
    repo = _cache(hf_cache, "org/tiny", tiny_qwen2, {"main": MAIN, "v2": TAGGED})
    assert resolve_model_path("org/tiny") == (repo / "snapshots" / MAIN, "org/tiny", MAIN)
    for revision in ("v2", TAGGED):
        path, _, commit = resolve_model_path("org/tiny", revision)
        assert (path, commit) == (repo / "snapshots" / TAGGED, TAGGED)


def test_revision_misuse_is_one_line(hf_cache, tiny_qwen2):
    _cache(hf_cache, "org/tiny", tiny_qwen2, {"main": MAIN})
    with pytest.raises(ModelNotFoundError, match="hf download org/tiny --revision nope") as e:
        resolve_model_path("org/tiny", "nope")
    assert "\n" not in str(e.value)
    with pytest.raises(UsageError, match="not to a local directory"):
        resolve_model_path(str(tiny_qwen2), "v2")


REMOTE_CONFIG = '''from transformers import Qwen2Config


class RemoteConfig(Qwen2Config):
    model_type = "rsp-remote-test"
'''
REMOTE_MODEL = '''from transformers import Qwen2ForCausalLM

from .configuration_remote import RemoteConfig


class RemoteForCausalLM(Qwen2ForCausalLM):
    config_class = RemoteConfig
'''


@pytest.fixture
def modules_cache(tmp_path, monkeypatch):
    """transformers copies remote code into HF_MODULES_CACHE (~/.cache/huggingface/modules)
    and imports it from there as the package transformers_modules: point both at tmp_path,
    and restore sys.path and sys.modules afterwards."""
    import sys

    import transformers.dynamic_module_utils as dynamic

    cache = tmp_path / "modules"
    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(cache))
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in [m for m in sys.modules if m.split(".")[0] == "transformers_modules"]:
        monkeypatch.delitem(sys.modules, name)
    yield cache
    for name in [m for m in sys.modules if m.split(".")[0] == "transformers_modules"]:
        del sys.modules[name]  # ours; monkeypatch then puts back any it removed


def _loaded_from(model, cache) -> bool:
    import sys

    return Path(sys.modules[type(model).__module__].__file__).is_relative_to(cache)


def _remote_code_checkpoint(tiny_qwen2, path, class_body: str = ""):
    """transformers imports the code as transformers_modules.<folder name>.modeling_remote
    and keeps it in sys.modules: each variant needs its own folder name."""
    shutil.copytree(tiny_qwen2, path)
    (path / "configuration_remote.py").write_text(REMOTE_CONFIG)
    (path / "modeling_remote.py").write_text(REMOTE_MODEL + class_body)
    config = json.loads((path / "config.json").read_text())
    config.update(model_type="rsp-remote-test", architectures=["RemoteForCausalLM"],
                  auto_map={"AutoConfig": "configuration_remote.RemoteConfig",
                            "AutoModelForCausalLM": "modeling_remote.RemoteForCausalLM"})
    (path / "config.json").write_text(json.dumps(config))
    return path


def test_remote_code_runs_only_when_trusted(tiny_qwen2, tmp_path, modules_cache):
    remote_code_checkpoint = _remote_code_checkpoint(tiny_qwen2, tmp_path / "remote_trusted")
    with pytest.raises(UsageError, match="--trust-remote-code") as e:
        load_model(str(remote_code_checkpoint), backend="hf")
    assert "\n" not in str(e.value)
    model = load_model(str(remote_code_checkpoint), backend="hf", trust_remote_code=True)
    assert type(model.model).__name__ == "RemoteForCausalLM"
    assert _loaded_from(model.model, modules_cache)  # never the user's ~/.cache


def test_a_model_transformers_runs_with_eager_attention_only_is_unsupported(tiny_qwen2,
                                                                             tmp_path,
                                                                             modules_cache):
    """A class that declares no sdpa support, for a reason other than Gemma 2's soft-capping
    (which the hf backend computes), is an UnsupportedModelError, so auto falls back."""
    from rsp_probe.backends.hf import UnsupportedModelError

    remote_code_checkpoint = _remote_code_checkpoint(tiny_qwen2, tmp_path / "remote_eager",
                                                     "    _supports_sdpa = False\n")
    with pytest.raises(UnsupportedModelError, match="eager attention only"):
        load_model(str(remote_code_checkpoint), backend="hf", trust_remote_code=True)
