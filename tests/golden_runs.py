"""The fixed-seed commands behind tests/data/golden (shared by the test and the regenerator),
and the comparison with its tolerances, derived from float32 error bounds.

Why a bound and not one machine's rounding: BLAS kernels (AVX2, AVX-512, another vendor's
blocking) sum the same dot products in different orders, so float32 step values differ in
their last bits from CPU to CPU (5.8e-6 on 7.398 measured on an AMD EPYC). What is exact on
every CPU is compared exactly (tokens, stop reasons, seeds, positions); what goes through
float32 sums is compared to the bound below.

Step values. A sum of n float32 terms is within lambda * sqrt(n) * u of its exact value,
relative to the sum of the magnitudes, with probability at least 1 - 2 exp(-lambda^2 / 2)
(Higham & Mary 2019, probabilistic rounding error analysis; u = 2^-24, the unit roundoff).
Two CPUs each within the bound differ by at most twice it. A step value depends on a chain
of sums whose rounding errors add (in quadrature for independent errors) to an error of
n_terms(model) terms: per layer a norm over d_model, an attention score over d_head <=
d_model, a softmax and a weighted sum over at most n_ctx positions, the output projection
over d_model, and an MLP over d_model then <= 4 d_model; then the final norm and the
unembedding over d_model, and the log-softmax over d_vocab. The errors are relative to the
scale of the logits, which every probe inherits (entropies, margins, KL are in nats or logit
units; fractions and probabilities are at most 1), so the scale is the largest magnitude
among the compared values, and at least 1. For the default model (n_terms = 13,714) this
gives 2 * 4 * 117 * 6e-8 * 10.9 = 6.1e-4 on the runs here: 100 times the AMD difference,
and far below what a real change moves (a different RSP draw or temperature moves values by
1e-2 or more; tests/test_golden.py shows both caught).

RSP vectors are drawn in float64 and rounded once to float32, so two CPUs can differ by at
most one float32 rounding: a relative 2^-23.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

GOLDEN_DIR = Path(__file__).parent / "data" / "golden"
COMMON = ["--n-prompts", "2", "--samples", "2", "--max-new-tokens", "12", "--quiet"]
GOLDEN_COMMANDS = {
    "entropy": ["entropy", "--rsp-tokens", "0,4", *COMMON],
    "attention": ["attention", "--rsp-tokens", "4", *COMMON],
    "influence": ["influence", "--rsp-tokens", "4", *COMMON],
}
KEPT_FILES = ("trajectories.jsonl", "steps.parquet", "rsp.safetensors", "config.json")

UNIT_ROUNDOFF = 2.0**-24  # float32
LAMBDA = 4.0  # Higham & Mary: each sum within the bound with probability >= 1 - 7e-4
VECTOR_RTOL = 2.0**-23  # one float32 rounding of a float64 draw
EXACT_FIELDS = ("generated_token_ids", "stop_reason", "rsp_positions", "seed", "rsp_seed")


def n_terms(model_info: dict) -> int:
    """The float32 terms summed along a step value's longest chain (see the module doc)."""
    d_model, n_ctx = model_info["d_model"], model_info["n_ctx"]
    per_layer = d_model + d_model + 2 * n_ctx + d_model + d_model + 4 * d_model
    return model_info["n_layers"] * per_layer + 2 * d_model + model_info["d_vocab"]


def value_tolerance(model_info: dict, values: np.ndarray) -> float:
    """Absolute tolerance between two CPUs' step values (see the module doc)."""
    scale = max(1.0, float(np.max(np.abs(values))) if len(values) else 1.0)
    return 2 * LAMBDA * math.sqrt(n_terms(model_info)) * UNIT_ROUNDOFF * scale


def records(path: Path) -> dict:
    with open(path / "trajectories.jsonl") as handle:
        return {r["id"]: r for r in map(json.loads, handle)}


def steps(path: Path) -> pd.DataFrame:
    frame = pd.read_parquet(path / "steps.parquet")
    # plain strings: a dictionary column sorts by its categories' order, which is the order
    # the rows were written in (job order in one pass, batch order when streamed)
    frame = frame.astype({"trajectory": str, "probe": str})
    keys = ["trajectory", "step", "probe", "layer", "head"]
    return frame.sort_values(keys).reset_index(drop=True)


def compare_with_golden(golden: Path, out: Path) -> None:
    """Raise AssertionError where the run at `out` differs from `golden` beyond rounding."""
    from safetensors.numpy import load_file

    expected, actual = records(golden), records(out)
    assert sorted(actual) == sorted(expected)
    for key, record in expected.items():
        for field in EXACT_FIELDS:
            assert actual[key][field] == record[field], (key, field)
    old_rsp, new_rsp = load_file(str(golden / "rsp.safetensors")), load_file(
        str(out / "rsp.safetensors"))
    assert sorted(old_rsp) == sorted(new_rsp)
    for key, vectors in old_rsp.items():
        np.testing.assert_allclose(new_rsp[key], vectors, rtol=VECTOR_RTOL, atol=0)
    old_steps, new_steps = steps(golden), steps(out)
    # probes added since the golden runs were written are not compared here
    new_steps = new_steps[new_steps["probe"].isin(old_steps["probe"].unique())]
    new_steps = new_steps.reset_index(drop=True)
    pd.testing.assert_frame_equal(new_steps.drop(columns="value"),
                                  old_steps.drop(columns="value"))
    model_info = json.loads((golden / "config.json").read_text())["model_info"]
    tolerance = value_tolerance(model_info, old_steps["value"].to_numpy())
    np.testing.assert_allclose(new_steps["value"], old_steps["value"], atol=tolerance, rtol=0)
