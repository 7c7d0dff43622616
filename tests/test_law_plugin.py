"""A law registered from outside the package, the way a third-party package brings one (an
entry point in the rsp_probe.plugins group): the CLI offers it, runs it, and its draws are in
the run; the validation of the Python API accepts it while it is registered."""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest
from plugins import install_plugin, plugin_env, run_cli

from rsp_probe.errors import UsageError
from rsp_probe.registry import LAWS

MODULE, LAW = "uniform_law_plugin", "scaled-uniform"
SOURCE = '''
    """A law from outside rsp-probe: uniform entries with the Gaussian law's mean and
    variance (half-width sqrt(3) sigma)."""
    import math

    from rsp_probe.laws import GaussianLaw, register_law


    @register_law
    class ScaledUniformLaw(GaussianLaw):
        name = "scaled-uniform"
        help = "uniform entries with the Gaussian law's mean and variance"

        def vectors(self, n, generator):
            import torch

            uniform = torch.rand(n, self.d_model, generator=generator, dtype=torch.float64)
            return (self.mean + self.std * math.sqrt(3) * (2 * uniform - 1)).float()

        def details(self):
            return {"half_width": math.sqrt(3) * float(self.std)}
'''
RUN = ["--n-prompts", "2", "--samples", "2", "--max-new-tokens", "4", "--rsp-tokens", "0,4",
       "--quiet"]


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    return install_plugin(tmp_path_factory.mktemp("plugin"), MODULE, SOURCE)


@pytest.fixture
def registered(plugin):
    """The plugin's law registered in this process too (imported from its file), and gone
    after the test."""
    spec = importlib.util.spec_from_file_location(MODULE, plugin / f"{MODULE}.py")
    module = importlib.util.module_from_spec(spec)
    LAWS.names()  # the built-ins first, as in a process that loads the plugin
    spec.loader.exec_module(module)
    try:
        yield module.ScaledUniformLaw
    finally:
        LAWS.unregister(LAW)


def test_the_cli_runs_a_plugin_law_and_saves_its_draws(plugin, registered, default_model,
                                                       tmp_path):
    from safetensors.numpy import load_file

    out = tmp_path / "run"
    done = run_cli(["entropy", "--law", LAW, *RUN, "--out", str(out)], plugin_env(plugin))
    assert done.returncode == 0, done.stderr
    assert (out / "DONE").exists()
    assert json.loads((out / "config.json").read_text())["law"] == LAW
    law = registered.fit(default_model.embedding_table)
    assert law.describe() == {"law": LAW, "d_model": law.d_model,
                              "half_width": math.sqrt(3) * float(law.std),
                              "mu": float(law.mean), "sigma": float(law.std)}
    vectors = load_file(str(out / "rsp.safetensors"))
    records = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    drawn = [r for r in records if r["rsp_tokens"] == 4]
    assert len(drawn) == 4 and len(records) == 8
    for record in drawn:
        saved = vectors[record["id"]]
        np.testing.assert_array_equal(saved, law.draw(4, record["rsp_seed"]).numpy())
        # a uniform draw, not the Gaussian law's (which leaves sqrt(3) sigma in ~8% of entries)
        assert np.abs(saved - float(law.mean)).max() <= math.sqrt(3) * float(law.std) * 1.0001


def test_help_lists_a_plugin_law_and_an_unknown_law_is_one_line(plugin):
    env = {**plugin_env(plugin), "COLUMNS": "10000"}  # argparse wraps help lines at hyphens
    shown = run_cli(["entropy", "--help"], env)
    assert shown.returncode == 0, shown.stderr
    usage = shown.stdout.split("--law {", 1)[1].split("}", 1)[0].split(",")
    assert usage[-1] == LAW and usage[0] == "gaussian"
    assert f"; {LAW}: uniform entries with the Gaussian law's mean and variance" in shown.stdout
    refused = run_cli(["entropy", "--law", "student-t", "--quiet"], env)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"rsp-probe entropy: error: argument --law: invalid choice: 'student-t' (choose from "
        f"{', '.join(map(repr, [*usage]))})"]


def test_the_api_accepts_a_plugin_law_only_while_registered(registered, tmp_path):
    from rsp_probe.experiments.base import get_experiment

    entropy = get_experiment("entropy")
    assert entropy.spec(law=LAW, out=str(tmp_path / "run")).rsp.law == LAW
    LAWS.unregister(LAW)
    with pytest.raises(UsageError, match="invalid choice: 'scaled-uniform'"):
        entropy.spec(law=LAW, out=str(tmp_path / "run"))
