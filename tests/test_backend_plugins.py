"""A backend registered from outside the package: by a plugin (an installed distribution's
`rsp_probe.plugins` entry point), run from the CLI in a fresh process; and by
`register_backend` in this process, run from the Python API. The backend wraps the hf
backend's load and marks what it loads, so a run can only record it if its load ran."""

from __future__ import annotations

import json
import sys

import pytest
from plugins import install_plugin, plugin_env, run_cli

import rsp_probe
from rsp_probe.backends import AUTO, list_backends, register_backend
from rsp_probe.config import BACKEND_CHOICES
from rsp_probe.errors import UsageError
from rsp_probe.registry import BACKENDS
from rsp_probe.runs import open_run

# A backend module: load() is the hf backend's, renamed, and leaves a marker file behind.
BACKEND_SOURCE = '''
import os
from pathlib import Path

NAME = {name!r}


def load(path, name, revision, dtype, device, self_test=True, **options):
    from rsp_probe.backends import hf

    backend = hf.load(path, name, revision, dtype, device, self_test=self_test, **options)
    backend.name = NAME  # what the run records as the backend that measured it
    Path(os.environ["RSP_TEST_BACKEND_MARKER"]).write_text(str(path))
    return backend
'''
PLUGIN, PLUGIN_BACKEND = "marked_backend_plugin", "marked-hf"
PLUGIN_SOURCE = BACKEND_SOURCE.format(name=PLUGIN_BACKEND) + '''

from rsp_probe.backends import register_backend

register_backend(NAME, __name__, help="the hf backend, loaded through a plugin")
'''
SMALL = ["--n-prompts", "2", "--samples", "1", "--max-new-tokens", "4", "--rsp-tokens", "2",
         "--quiet"]


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    folder = install_plugin(tmp_path_factory.mktemp("plugin"), PLUGIN, PLUGIN_SOURCE)
    marker = folder / "loaded.txt"
    return {**plugin_env(folder), "RSP_TEST_BACKEND_MARKER": str(marker)}, marker


def test_a_plugin_backend_runs_from_the_cli(plugin, tiny_qwen2, tmp_path):
    env, marker = plugin
    out = tmp_path / "run"
    result = run_cli(["entropy", "--model", str(tiny_qwen2), "--backend", PLUGIN_BACKEND,
                      *SMALL, "--out", str(out)], env)
    assert result.returncode == 0, result.stderr
    assert marker.read_text() == str(tiny_qwen2)  # the plugin's load ran, on this model
    config = json.loads((out / "config.json").read_text())
    assert (config["backend"], config["model_info"]["backend"]) == (PLUGIN_BACKEND,) * 2
    run = open_run(out)  # complete: DONE written and its checksums verified
    assert len(run.trajectories) == 2 * 2  # 2 prompts, each without an RSP and with k=2
    # the same model and seeds through the built-in hf backend: the same tokens
    reference, _ = rsp_probe.entropy(str(tiny_qwen2), backend="hf", n_prompts=2, samples=1,
                                     max_new_tokens=4, rsp_tokens=(2,), quiet=True,
                                     out=str(tmp_path / "hf"))
    assert run.trajectories["generated_token_ids"].tolist() == \
        reference.trajectories["generated_token_ids"].tolist()


def test_the_cli_offers_a_plugin_backend_and_refuses_an_unknown_one(plugin):
    env, _ = plugin
    usage = run_cli(["entropy", "--help"], env)
    assert usage.returncode == 0, usage.stderr
    assert f"--backend {{{AUTO},hf,transformer-lens,{PLUGIN_BACKEND}}}" in usage.stdout
    assert f"{PLUGIN_BACKEND}: the hf backend, loaded through a plugin" in " ".join(
        usage.stdout.split())  # its one-line help, as argparse wraps it
    refused = run_cli(["entropy", "--backend", "no-such-backend", "--out", "unused"], env)
    assert refused.returncode == 2
    assert refused.stderr.strip().count("\n") == 0, refused.stderr  # one line
    assert "--backend" in refused.stderr and "no-such-backend" in refused.stderr
    assert repr(PLUGIN_BACKEND) in refused.stderr  # the choices it names include the plugin's


def test_a_plugin_backend_is_not_offered_without_the_plugin(tiny_qwen2, tmp_path):
    assert PLUGIN_BACKEND not in list_backends()
    refused = run_cli(["entropy", "--model", str(tiny_qwen2), "--backend", PLUGIN_BACKEND,
                       "--out", str(tmp_path / "run")], plugin_env())
    assert refused.returncode == 2 and "invalid choice" in refused.stderr
    assert not (tmp_path / "run").exists()


@pytest.fixture
def api_backend(tmp_path, monkeypatch):
    """A backend module outside the package, registered in this process as a notebook would."""
    name, module = "api-marked-hf", "api_marked_backend"
    (tmp_path / f"{module}.py").write_text(BACKEND_SOURCE.format(name=name))
    monkeypatch.syspath_prepend(str(tmp_path))
    marker = tmp_path / "loaded.txt"
    monkeypatch.setenv("RSP_TEST_BACKEND_MARKER", str(marker))
    register_backend(name, module, help="the hf backend, registered from a notebook")
    try:
        yield name, marker
    finally:
        BACKENDS.unregister(name)
        sys.modules.pop(module, None)


def test_a_registered_backend_runs_from_the_python_api(api_backend, tiny_qwen2, tmp_path):
    name, marker = api_backend
    assert name in list_backends() and name in BACKEND_CHOICES
    run, _ = rsp_probe.entropy(str(tiny_qwen2), backend=name, n_prompts=2, samples=1,
                               max_new_tokens=4, rsp_tokens=(2,), quiet=True,
                               out=str(tmp_path / "run"))
    assert marker.read_text() == str(tiny_qwen2)
    assert (run.config["backend"], run.config["model_info"]["backend"]) == (name, name)


def test_the_python_api_refuses_an_unknown_backend_in_one_line(tmp_path):
    with pytest.raises(UsageError, match=r"argument --backend: invalid choice: 'nope'") as err:
        rsp_probe.entropy(backend="nope", out=str(tmp_path / "run"))
    assert "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()


def test_registering_a_backend_checks_its_name():
    with pytest.raises(ValueError, match="already registered"):
        register_backend("hf", "somewhere.else")
    with pytest.raises(ValueError, match="reserved"):
        register_backend(AUTO, "somewhere.else")
    assert list(BACKEND_CHOICES)[:3] == [AUTO, "hf", "transformer-lens"]
