"""`reproduce` continues an interrupted plan: a completed run measuring the same thing is
reused without loading a model; one measuring something else is an error, not a silent reuse."""

import pytest

from rsp_probe.errors import UsageError
from rsp_probe.experiments.reproduce import PLAN, run_plan

SMALL = dict(n_prompts=2, max_new_tokens=4, samples=1, rsp_tokens=(0, 2), backend="hf")


class Untouchable:
    """A 'model' that fails if the plan tries to sample with it."""

    def __getattr__(self, name):
        raise AssertionError(f"the reused run was recomputed ({name})")


def test_completed_runs_are_reused_and_changed_ones_refused(tmp_path, tiny_qwen2):
    plan = (("entropy", "entropy", SMALL),)
    first = run_plan(tmp_path, model_spec=str(tiny_qwen2), quiet=True, plan=plan)
    again = run_plan(tmp_path, model=Untouchable(), model_spec=str(tiny_qwen2), quiet=True,
                     plan=plan)
    assert again[0].config_hash == first[0].config_hash
    changed = (("entropy", "entropy", dict(SMALL, rsp_tokens=(0, 3))),)
    with pytest.raises(UsageError, match="rsp_tokens"):
        run_plan(tmp_path, model=Untouchable(), model_spec=str(tiny_qwen2), quiet=True,
                 plan=changed)


def test_every_comparison_runs_at_an_intermediate_dose_and_k16():
    """#12: no comparison at k = 4 only, where the RSP changes little on the default model."""
    doses = {}
    for _name, command, options in PLAN:
        doses.setdefault(command, set()).update(options["rsp_tokens"])
    for command in ("entropy", "attention", "influence", "branching", "passk"):
        assert {4, 16} <= doses[command], command
    for name, _command, options in PLAN:
        if name.startswith("ablation"):
            assert {0, 4, 16} <= set(options["rsp_tokens"]), name


@pytest.mark.parametrize("command", ["passk", "branching"])
def test_one_dose_per_named_condition_run(command):
    """temp+rsp at two k would share one name: refused, not silently run at one of them."""
    from rsp_probe.experiments.base import get_experiment
    from rsp_probe.experiments.common import named_conditions

    experiment = get_experiment(command)
    spec = experiment.spec(rsp_tokens=(4, 16))
    with pytest.raises(UsageError, match="one RSP dose per run"):
        named_conditions(tuple(spec.option("conditions")), spec)
    single = experiment.spec(rsp_tokens=(0, 16))
    assert {c.rsp_tokens for c in named_conditions(tuple(single.option("conditions")),
                                                   single)} == {0, 16}
