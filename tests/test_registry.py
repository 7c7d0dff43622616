"""The three registries: experiments (CLI, API, show, figures), probes (the sampler) and
backends. A toy probe and a toy experiment, registered only here, run end to end."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest
import torch

import rsp_probe
from rsp_probe.cli import build_parser, main, spec_from_args
from rsp_probe.config import Condition
from rsp_probe.experiments.base import (
    Experiment,
    experiments,
    register_experiment,
    unregister_experiment,
)
from rsp_probe.figures import figure_module, figure_names
from rsp_probe.probes.base import (
    DEFAULT_PROBES,
    BatchContext,
    BufferedProbe,
    list_probes,
    register_probe,
    unregister_probe,
)

TOY_PROBE, TOY_EXPERIMENT = "toy_max_logit", "toymax"


def test_every_figure_input_is_a_registered_experiment():
    registered = experiments()
    for name in figure_names():
        module = figure_module(name)
        inputs = (*module.NEEDS, *getattr(module, "USES", ()))
        assert inputs and set(inputs) <= set(registered), (name, inputs)
    fed = {figure for e in registered.values() for figure in e.figures}
    assert fed == set(figure_names())


@pytest.mark.parametrize("name", list(experiments()))
def test_api_and_cli_resolve_the_same_defaults(name):
    experiment = experiments()[name]
    from_cli = spec_from_args(experiment, build_parser().parse_args([name, "--out", "x"]))
    from_api = experiment.spec(out="x")
    assert from_cli.to_dict() == from_api.to_dict()
    for option, value in experiment.defaults.items():  # the overrides really apply
        assert from_api.to_dict()[option] == (list(value) if isinstance(value, tuple)
                                               else value)


def test_every_public_experiment_is_an_api_function():
    for name in experiments():
        function = getattr(rsp_probe, name)  # generated from the option table (rsp_probe.api)
        assert function.experiment is experiments()[name] and function is getattr(rsp_probe, name)
        public = name.replace("-", "_")  # an identifier: `from rsp_probe import *` binds it
        assert public in dir(rsp_probe) and public in rsp_probe.__all__
        assert getattr(rsp_probe, public) is function


# -- a toy probe and a toy experiment, registered only here ----------------------------------

class MaxLogitProbe(BufferedProbe):
    """The largest next-token logit of each step."""

    def __init__(self, context: BatchContext):
        super().__init__(context, (TOY_PROBE,))

    def record(self, step: int, logits: torch.Tensor) -> None:
        self.values[TOY_PROBE][:, step - 1] = logits.float().max(dim=-1).values


@dataclasses.dataclass(frozen=True)
class ToyOptions:
    greedy: bool = dataclasses.field(default=True, metadata={"help": "greedy decoding"})


def run_toy(spec, model=None):
    from rsp_probe.experiments.sampling import sample_and_write

    temperature = 0.0 if spec.option("greedy") else spec.sampling.temperature
    conditions = [Condition("k0", 0, temperature)]
    run = sample_and_write(spec, model, conditions, probes=("logits", TOY_PROBE))
    return run, run.steps


def describe_toy(run, full: bool = False) -> str:
    values = run.steps[run.steps["probe"] == TOY_PROBE]["value"]
    return f"# {TOY_EXPERIMENT}: mean max logit {values.mean():.4f} over {len(values)} steps"


@pytest.fixture
def toy_registered():
    register_probe(TOY_PROBE, MaxLogitProbe)
    register_experiment(Experiment(name=TOY_EXPERIMENT, help="max logit per step (test)",
                                   run=run_toy, describe=describe_toy, options=ToyOptions,
                                   defaults={"n_prompts": 2, "max_new_tokens": 6}))
    yield
    unregister_experiment(TOY_EXPERIMENT)
    unregister_probe(TOY_PROBE)


def _reference_max_logits(checkpoint, run) -> dict[str, np.ndarray]:
    """Independent reference: a plain Hugging Face forward over prompt + generated tokens."""
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(str(checkpoint)).eval()
    out = {}
    for record in run.trajectories.itertuples():
        ids = list(record.prompt_token_ids) + list(record.generated_token_ids)
        with torch.no_grad():
            logits = hf(torch.tensor([ids[:-1]])).logits[0]
        first = len(record.prompt_token_ids) - 1
        out[record.id] = logits[first:first + record.n_steps].max(dim=-1).values.numpy()
    return out


def _check_toy_run(run, checkpoint) -> None:
    steps = run.steps[run.steps["probe"] == TOY_PROBE]
    assert set(steps["trajectory"]) == set(run.trajectories["id"])
    reference = _reference_max_logits(checkpoint, run)
    for trajectory, rows in steps.groupby("trajectory"):
        np.testing.assert_allclose(rows.sort_values("step")["value"].to_numpy(),
                                   reference[trajectory], atol=1e-4)


def test_toy_probe_and_experiment_run_from_cli_and_api(toy_registered, tiny_qwen2, tmp_path,
                                                       capsys):
    assert TOY_PROBE in list_probes() and TOY_PROBE not in DEFAULT_PROBES
    out = tmp_path / "cli"
    assert main([TOY_EXPERIMENT, "--model", str(tiny_qwen2), "--out", str(out), "--quiet"]) == 0
    assert f"# {TOY_EXPERIMENT}: mean max logit" in capsys.readouterr().out
    run, _ = rsp_probe.toymax(model=str(tiny_qwen2), out=str(tmp_path / "api"), quiet=True)
    from rsp_probe.runs import open_run

    cli_run = open_run(out)
    _check_toy_run(cli_run, tiny_qwen2)
    _check_toy_run(run, tiny_qwen2)
    assert cli_run.trajectories["generated_token_ids"].tolist() == \
        run.trajectories["generated_token_ids"].tolist()
    assert main(["show", str(out)]) == 0
    assert TOY_EXPERIMENT in capsys.readouterr().out


def test_unknown_probe_and_duplicate_registration_are_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_probe("logits", MaxLogitProbe)
    with pytest.raises(ValueError, match="already registered"):
        register_experiment(experiments()["entropy"])
    from rsp_probe.probes.base import build_probes

    with pytest.raises(ValueError, match="unknown probe"):
        build_probes(["no-such-probe"], None)


# -- the finalize contract: a probe that breaks it is named in one line ----------------------

class _BadProbe(BufferedProbe):
    """Records the max logit under TOY_PROBE, then finalizes it wrongly (`how`)."""

    how = "shape"

    def __init__(self, context: BatchContext):
        super().__init__(context, (TOY_PROBE,))
        self.n_layers = context.n_layers

    def record(self, step: int, logits: torch.Tensor) -> None:
        self.values[TOY_PROBE][:, step - 1] = logits.float().max(dim=-1).values

    def finalize(self, n_steps):
        rows = super().finalize(n_steps)
        if self.how == "shape":  # [S, L + 1]: one layer more than the model has
            return [{TOY_PROBE: np.stack([v[TOY_PROBE]] * (self.n_layers + 1), axis=1)}
                    for v in rows]
        if self.how == "label":
            return [{"undeclared": v[TOY_PROBE]} for v in rows]
        return rows[:-1]  # "rows"


def _bad(how):
    def factory(context):
        probe = _BadProbe(context)
        probe.how = how
        return probe
    return factory


def _twin(context):  # declares and reports `entropy`, which the logits probe reports too
    return BufferedProbe(context, ("entropy",))


@pytest.mark.parametrize("factory, message", [
    (_bad("shape"), rf"probe '{TOY_PROBE}': '{TOY_PROBE}' of row 0 has shape \[(\d+), 3\]; "
                    r"expected \[\1\], \[\1, 2\] or \[\1, 2, \d+\]"),
    (_bad("label"), rf"probe '{TOY_PROBE}': finalize returned label 'undeclared'; it "
                    rf"declares {TOY_PROBE}$"),
    (_bad("rows"), rf"probe '{TOY_PROBE}': finalize returned 1 rows for a batch of 2$"),
    (_twin, f"label 'entropy' is reported by probes 'logits' and '{TOY_PROBE}'$"),
], ids=["shape", "label", "rows", "duplicate"])
def test_probe_breaking_the_finalize_contract_is_named(loaded_qwen2, factory, message):
    from rsp_probe.probes.base import ProbeContractError
    from rsp_probe.sampler import Job, generate

    assert loaded_qwen2.info.n_layers == 2  # the shapes the message names
    register_probe(TOY_PROBE, factory)
    try:
        ids = loaded_qwen2.tokenizer.encode("What is 2 + 2?")
        jobs = [Job(str(i), ids, [], torch.zeros(0, loaded_qwen2.info.d_model), 0.0, 1.0, i)
                for i in range(2)]
        with pytest.raises(ProbeContractError, match=message):
            generate(loaded_qwen2, jobs, 3, probes=("logits", TOY_PROBE))
    finally:
        unregister_probe(TOY_PROBE)


SAMPLED_EXPERIMENTS = ("entropy", "attention", "influence", "branching", "passk", "dose",
                       "knockout")


@pytest.mark.parametrize("name", SAMPLED_EXPERIMENTS)
def test_an_experiment_records_the_probes_it_declares(name, default_model, tmp_path,
                                                      monkeypatch):
    """The probes an experiment declares are those the sampler runs for it (one prompt, two
    tokens): the declaration is what the docs and --help read, so it must not drift."""
    import rsp_probe.sampler as sampler

    used = []
    real = sampler._generate_batch

    def recording(model, jobs, max_new_tokens, stop_strings, probe_names, *rest):
        used.append(tuple(probe_names))
        return real(model, jobs, max_new_tokens, stop_strings, probe_names, *rest)

    monkeypatch.setattr(sampler, "_generate_batch", recording)
    experiment = experiments()[name]
    experiment(default_model, n_prompts=1, max_new_tokens=2, samples=2, quiet=True,
               out=str(tmp_path / name))
    assert experiment.probes and set(used) == {tuple(experiment.probes)}


def test_an_entry_registered_before_the_builtins_load_comes_after_them(tmp_path, monkeypatch):
    """A plugin that registers into a registry nobody has read yet (a backend, while the
    experiments' first read loads the plugins) still lists after the built-ins."""
    (tmp_path / "thing_registry.py").write_text(
        "from rsp_probe.registry import Registry\n"
        "THINGS = Registry('thing', ('thing_builtins',))\n")
    (tmp_path / "thing_builtins.py").write_text(
        "from thing_registry import THINGS\nTHINGS.register('builtin', 'b')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("thing_registry", "thing_builtins"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    from thing_registry import THINGS

    THINGS.register("plugin", "p")  # before anything read the registry
    assert THINGS.names() == ["builtin", "plugin"]


def test_the_experiment_order_does_not_depend_on_what_was_imported_first():
    """The CLI's, the plan's and the claims' order is the declared one, also in a process
    that imported one experiment's module before reading the registry (as tests do)."""
    import subprocess

    script = ("import rsp_probe.experiments.{} ; from rsp_probe.registry import EXPERIMENTS; "
              "print(EXPERIMENTS.names())")
    orders = {subprocess.run([sys.executable, "-c", script.format(module)], check=True,
                             capture_output=True, text=True).stdout
              for module in ("dose", "train_rl", "base")}
    assert len(orders) == 1
