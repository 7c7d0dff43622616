"""A committed fixed-seed run must come out the same: tokens exactly, step values to 1e-6.

The runs in tests/data/golden were written by the code before the backend / probe /
experiment refactor; any change to sampling, RSP draws or probe values shows up here.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from golden_runs import GOLDEN_COMMANDS, GOLDEN_DIR

from rsp_probe.cli import build_parser, spec_from_args
from rsp_probe.experiments.base import execute, get_experiment


def _records(path):
    with open(path / "trajectories.jsonl") as handle:
        return {r["id"]: r for r in map(json.loads, handle)}


def _steps(path):
    frame = pd.read_parquet(path / "steps.parquet")
    # plain strings: a dictionary column sorts by its categories' order, which is the order
    # the rows were written in (job order in one pass, batch order when streamed)
    frame = frame.astype({"trajectory": str, "probe": str})
    keys = ["trajectory", "step", "probe", "layer", "head"]
    return frame.sort_values(keys).reset_index(drop=True)


# the bridge wrote the golden runs (eager attention); the hf backend's sdpa prefill rounds
# differently in the last float32 bits, well inside the backends' 1e-4 agreement
BACKEND_TOLERANCE = {"transformer-lens": 1e-6, "hf": 1e-5}


@pytest.fixture(scope="module")
def default_models(default_model):
    """The default model behind each backend, loaded once for the three commands."""
    from rsp_probe.models import load_model

    return {"transformer-lens": default_model, "hf": load_model(backend="hf")}


def _run_command(argv: list[str], model) -> None:
    """What `rsp-probe ARGV` runs (the command line's own parser and spec), on a loaded
    model: loading the default model again for each of the six runs would cost ~7 s each."""
    args = build_parser().parse_args(argv)
    experiment = get_experiment(args.command)
    execute(experiment, spec_from_args(experiment, args), model)


@pytest.mark.parametrize("backend", sorted(BACKEND_TOLERANCE))
@pytest.mark.parametrize("name", sorted(GOLDEN_COMMANDS))
def test_fixed_seed_run_matches_golden(name, backend, tmp_path, default_models):
    from safetensors.numpy import load_file

    golden = GOLDEN_DIR / name
    weights = json.loads((golden / "config.json").read_text())["model_info"]["weights_sha256"]
    out = tmp_path / name
    model = default_models[backend]
    assert type(model).__module__.endswith(backend.replace("-", "_"))
    _run_command([*GOLDEN_COMMANDS[name], "--backend", backend, "--out", str(out)], model)
    now = json.loads((out / "config.json").read_text())["model_info"]["weights_sha256"]
    assert now == weights, ("the default model changed since tests/data/golden was written; "
                            "regenerate it with tests/data/golden/regenerate.py")
    expected, actual = _records(golden), _records(out)
    assert sorted(actual) == sorted(expected)
    for key, record in expected.items():
        for field in ("generated_token_ids", "stop_reason", "rsp_positions", "seed", "rsp_seed"):
            assert actual[key][field] == record[field], (key, field)
    old_rsp, new_rsp = load_file(str(golden / "rsp.safetensors")), load_file(
        str(out / "rsp.safetensors"))
    assert sorted(old_rsp) == sorted(new_rsp)
    for key, vectors in old_rsp.items():
        np.testing.assert_array_equal(new_rsp[key], vectors)
    old_steps, new_steps = _steps(golden), _steps(out)
    # probes added since the golden runs were written are not compared here
    new_steps = new_steps[new_steps["probe"].isin(old_steps["probe"].unique())]
    new_steps = new_steps.reset_index(drop=True).astype({"probe": str})
    old_steps = old_steps.astype({"probe": str})
    pd.testing.assert_frame_equal(new_steps.drop(columns="value"),
                                  old_steps.drop(columns="value"))
    np.testing.assert_allclose(new_steps["value"], old_steps["value"],
                               atol=BACKEND_TOLERANCE[backend], rtol=0)
