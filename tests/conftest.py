"""Tiny real checkpoints built once per session: no mocks, no network."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One torch thread per process (set before torch is imported; inherited by the CLI
# subprocesses and the notebook kernel): `make test` runs two xdist workers on two cores, and
# two workers x two OpenMP threads spin against each other. Measured on the 2-core machine
# with a background job: tests/test_knockout.py + test_sampler.py took 455 s with two threads
# per worker, 33 s with one.
os.environ["OMP_NUM_THREADS"] = "1"

SAMPLE_TEXT = [
    "Mia has 12 pencils. She buys 7 more and gives 5 to Leo. How many pencils does Mia have now?",
    "Answer: Mia starts with 12. 12 + 7 = 19. 19 - 5 = 14. #### 14",
    "The quick brown fox jumps over the lazy dog while the cat sleeps in the sun.",
    "Leo bakes 3 trays of 6 cookies and eats 4. How many cookies are left? #### 14",
] * 20


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    from rsp_probe.toy.tokenizer import train_tokenizer

    out = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer(SAMPLE_TEXT, vocab_size=300, out_dir=out)
    return out


def _checkpoint(tmp_path_factory, tokenizer_dir, family: str):
    from rsp_probe.toy.checkpoint import ToyArchitecture, save_random_checkpoint

    arch = ToyArchitecture(family=family, n_layers=2, d_model=64, n_heads=4, n_kv_heads=2,
                           d_mlp=128, n_ctx=256, initializer_range=0.4)
    return save_random_checkpoint(tmp_path_factory.mktemp(f"tiny-{family}"), arch, tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_qwen2(tmp_path_factory, tokenizer_dir):
    return _checkpoint(tmp_path_factory, tokenizer_dir, "qwen2")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory, tokenizer_dir):
    return _checkpoint(tmp_path_factory, tokenizer_dir, "llama")


@pytest.fixture(scope="session", params=["qwen2", "llama"])
def tiny_checkpoint(request):
    return request.getfixturevalue(f"tiny_{request.param}")


@pytest.fixture(scope="session")
def loaded_qwen2(tiny_qwen2):
    from rsp_probe.models import load_model

    return load_model(str(tiny_qwen2), backend="transformer-lens")


@pytest.fixture(scope="session")
def hf_qwen2(tiny_qwen2):
    """The same tiny checkpoint in plain transformers, eager attention: the reference."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(tiny_qwen2), attn_implementation="eager").eval()


@pytest.fixture(scope="session")
def default_model():
    """The embedded default model behind the default backend, loaded once per test process
    (loading it costs ~7 s of CPU); tests pass it as `model=` where the path they test is not
    the loading itself."""
    from rsp_probe.models import load_model

    return load_model(backend="transformer-lens")
