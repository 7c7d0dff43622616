"""Extension from outside the package: a plugin, installed the way a third-party package
is (a dist-info whose entry point names its module in the `rsp_probe.plugins` group), brings
an experiment with its own figure and claims, an RSP law and a backend, and the CLI runs
them, draws the figure and computes the claims, without a line of rsp_probe changed.
Everything runs in subprocesses: entry points are read once per process, and this one must
not see the plugin. (tests/test_law_plugin.py and tests/test_backend_plugins.py test each
seam on its own, in more detail.)"""

from __future__ import annotations

import json

import pytest
from plugins import install_plugin, plugin_env, run_cli
from test_backend_plugins import BACKEND_SOURCE
from test_law_plugin import SOURCE as LAW

BACKEND = BACKEND_SOURCE.format(name="marked-hf")  # the hf backend's load, leaving a marker

EXPERIMENT_PLUGIN = '''
    """First-step entropy: a third-party experiment, declared in one module."""
    from rsp_probe.experiments.base import Experiment, register_experiment
    from rsp_probe.experiments.common import conditions_by_k

    COMMAND = "first-step"


    def first_step_table(run):
        """Mean next-token entropy at the first generated step, per k."""
        steps = run.steps
        first = steps[(steps["probe"] == "entropy") & (steps["step"] == 1)]
        k = run.trajectories.set_index("id")["rsp_tokens"]
        frame = first.assign(k=first["trajectory"].map(k).astype(int))
        return (frame.groupby("k", as_index=False)["value"].mean()
                .rename(columns={"value": "entropy"}))


    def run_first_step(spec, model=None):
        from rsp_probe.experiments.sampling import sample_and_write

        run = sample_and_write(spec, model, conditions_by_k(spec))
        return run, first_step_table(run)


    def describe(run, full=False):
        return "first-step entropy (nats) by k\\n" + first_step_table(run).to_string(index=False)


    register_experiment(Experiment(
        name=COMMAND, help="next-token entropy at the first generated step, by k",
        run=run_first_step, describe=describe, summarize=first_step_table,
        defaults={"rsp_tokens": (0, 4)}, figures=("first_step_figure",),
        claims=("first_step_claims",), reproduce=((COMMAND, {"n_prompts": 2}),)))
'''

FIGURE = '''
    """The first-step experiment's figure: entropy at step 1 against k."""
    from first_step_plugin import COMMAND, first_step_table

    NAME = "first_step"
    NEEDS = (COMMAND,)


    def data(runs):
        return first_step_table(runs[0])


    def make(df):
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(4, 3))
        ax.plot(df["k"], df["entropy"], marker="o")
        ax.set_xlabel("k (RSP vectors)")
        ax.set_ylabel("entropy at step 1 (nats)")
        ax.set_title("Does an RSP flatten the first step?")
        return fig


    def caption(df):
        return f"Mean next-token entropy at the first generated step, {len(df)} doses."
'''

CLAIMS = '''
    """The first-step experiment's claims: the entropy lift of each k over k = 0."""
    from first_step_plugin import COMMAND, first_step_table
    from rsp_probe.claims.core import Claim, claim_family


    @claim_family("first-step", "First-step entropy", runs=(COMMAND,))
    def first_step_claims(runs):
        table = first_step_table(runs[COMMAND]).set_index("k")["entropy"]
        for k in table.index[table.index > 0]:
            yield Claim(id=f"first-step.lift.k{k}", section="First-step entropy",
                        runs=(COMMAND,), statistic="mean difference",
                        value=float(table[k] - table[0]), fields={"k": int(k)},
                        template="k={k}: first-step entropy lift {value:.4f} nats")
'''


HOUSE = '''
    """One package bringing all three: an experiment, a law and a backend."""
    import first_step_plugin  # noqa: F401  (registers the experiment, its figure and claims)
    import uniform_law  # noqa: F401  (registers the law)
    from rsp_probe.backends import register_backend

    register_backend("marked-hf", "marked_backend", help="the hf backend, through a plugin")
'''


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    folder = tmp_path_factory.mktemp("site")
    install_plugin(folder, "first_step_plugin", EXPERIMENT_PLUGIN,
                   first_step_figure=FIGURE, first_step_claims=CLAIMS)
    return plugin_env(folder)


def test_the_cli_offers_the_plugins_experiment(plugin):
    listed = run_cli(["--help"], plugin)
    assert listed.returncode == 0 and "first-step" in listed.stdout
    assert "first-step" not in run_cli(["--help"], plugin_env()).stdout  # the plugin's doing


def test_a_plugin_experiment_runs_from_the_cli_with_its_figure_and_claims(plugin, tmp_path):
    runs = tmp_path / "runs"
    ran = run_cli(["first-step", "--n-prompts", "2", "--max-new-tokens", "3",
                   "--out", str(runs / "first-step"), "--quiet"], plugin)
    assert ran.returncode == 0, ran.stderr
    assert "first-step entropy (nats) by k" in ran.stdout
    run = runs / "first-step"
    assert json.loads((run / "config.json").read_text())["command"] == "first-step"
    assert (run / "figure-first_step.png").stat().st_size > 0  # its own figure, in DONE
    assert "figure-first_step.png" in json.loads((run / "DONE").read_text())["files"]

    shown = run_cli(["show", str(run)], plugin)
    assert shown.returncode == 0 and "first-step entropy (nats) by k" in shown.stdout

    figures = tmp_path / "figures"
    drawn = run_cli(["figures", "--runs", str(runs), "--out", str(figures)], plugin)
    assert drawn.returncode == 0, drawn.stderr
    assert {p.name for p in figures.glob("first_step.*")} >= {
        "first_step.png", "first_step.pdf", "first_step.csv", "first_step.caption.md"}

    claims = figures / "claims.json"
    computed = run_cli(["claims", "--runs", str(runs), "--out", str(claims)], plugin)
    assert computed.returncode == 0, computed.stderr
    ids = [c["id"] for c in json.loads(claims.read_text())["claims"]]
    assert "first-step.lift.k4" in ids and "provenance.runs" in ids[:3]
    assert "k=4: first-step entropy lift" in computed.stdout


def test_a_plugin_experiment_law_and_backend_run_together_from_the_cli(tmp_path):
    folder = install_plugin(tmp_path / "site", "house_plugin", HOUSE,
                            first_step_plugin=EXPERIMENT_PLUGIN, first_step_figure=FIGURE,
                            first_step_claims=CLAIMS, uniform_law=LAW, marked_backend=BACKEND)
    marker = tmp_path / "backend-loaded"
    env = {**plugin_env(folder), "RSP_TEST_BACKEND_MARKER": str(marker)}
    runs = tmp_path / "runs"
    ran = run_cli(["first-step", "--law", "scaled-uniform", "--backend", "marked-hf",
                   "--n-prompts", "2", "--max-new-tokens", "3", "--quiet",
                   "--out", str(runs / "first-step")], env)
    assert ran.returncode == 0, ran.stderr
    config = json.loads((runs / "first-step" / "config.json").read_text())
    assert (config["command"], config["law"]) == ("first-step", "scaled-uniform")
    assert (config["backend"], config["model_info"]["backend"]) == ("marked-hf", "marked-hf")
    assert marker.exists()  # the plugin's backend loaded the model
    assert (runs / "first-step" / "figure-first_step.png").exists()

    figures = tmp_path / "figures"
    assert run_cli(["figures", "--runs", str(runs), "--out", str(figures)], env).returncode == 0
    assert (figures / "first_step.png").exists()
    computed = run_cli(["claims", "--runs", str(runs), "--out", str(figures / "c.json")], env)
    assert computed.returncode == 0, computed.stderr
    claims = json.loads((figures / "c.json").read_text())["claims"]
    assert "first-step.lift.k4" in [c["id"] for c in claims]


def test_a_plugin_that_fails_to_load_is_one_line_naming_it(tmp_path):
    folder = install_plugin(tmp_path / "site", "broken_plugin", "raise RuntimeError('boom')\n")
    for args in (["--help"], ["entropy", "--n-prompts", "1"]):
        result = run_cli(args, plugin_env(folder))
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.strip().splitlines() == [
            "rsp-probe: error: the rsp-probe plugin 'broken_plugin' (broken_plugin) failed to "
            "load: RuntimeError: boom"]
