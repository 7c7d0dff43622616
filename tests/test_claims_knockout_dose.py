"""Knockout and dose claims on the kept runs: a KL along a reference's tokens is windowed by
the reference's length, knockout text says "from step s on", and the paths are a 2x2 whose
interaction is the combination of the four cells' KLs."""

from pathlib import Path

import numpy as np
import pytest

from rsp_probe.claims import compute_claims
from rsp_probe.runs import find_runs

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def kept():
    runs = {run.id: run for run in find_runs([ROOT / "figures" / "runs"])}
    return compute_claims({"knockout": runs["knockout"], "dose": runs["dose"]},
                          only=["knockout", "dose"]).by_id(), runs


def _late_by_hand(run, condition, reference, probe):
    """Mean over prompts of each trajectory's KL over the last 10 steps of its reference twin
    (same prompt and sample): the KL runs along the reference's tokens."""
    traj = run.trajectories
    twins = traj[traj["condition"] == reference].set_index(["prompt_id", "sample"])["n_steps"]
    mine = traj[traj["condition"] == condition]
    steps = run.steps[(run.steps["probe"] == probe)]
    per_prompt = {}
    for row in mine.itertuples():
        length = twins[(row.prompt_id, row.sample)]
        rows = steps[(steps["trajectory"] == row.id) & (steps["step"] > length - 10)]
        per_prompt.setdefault(row.prompt_id, []).append(rows["value"].mean())
    return np.mean([np.mean(v) for v in per_prompt.values()]), len(per_prompt)


def test_late_dose_kl_windows_by_the_reference_length(kept):
    claims, runs = kept
    for k in (4, 16):
        value, n = _late_by_hand(runs["dose"], f"k{k}", "k0", "dose_kl")
        claim = claims[f"dose.kl.late.k{k}"]
        assert (claim.value, claim.n) == (pytest.approx(value), n)
        assert n == 24  # windowed by its own length, k=4 lost a prompt
    assert claims["dose.kl.late.k4"].value == pytest.approx(0.0212, abs=5e-5)
    assert claims["dose.kl.late.k16"].value == pytest.approx(0.0893, abs=5e-5)


def test_late_knockout_kl_windows_by_the_full_runs_length(kept):
    claims, runs = kept
    value, n = _late_by_hand(runs["knockout"], "cut1", "full", "knockout_kl")
    assert claims["knockout.kl.late.cut1"].value == pytest.approx(value)


def test_knockout_text_says_from_step_s_on_and_names_the_prefill_once(kept):
    claims, _ = kept
    sentences = [c.sentence for c in claims.values() if c.id.startswith("knockout.")]
    assert not any("after step" in s for s in sentences)
    assert "RSP keys masked from step 16 on" in claims["knockout.kl.middle.cut16"].sentence
    assert claims["knockout.kl.middle.cut16"].value > 0  # masking from step 16 changes it
    assert "from step 1 (the prefill) on" in claims["knockout.kl.early.cut1"].sentence


def test_path_interaction_is_the_2x2_combination(kept):
    claims, _ = kept
    for window in ("early", "middle", "late"):
        cell = {name: claims[f"knockout.kl.{window}.{name}"].value
                for name in ("cut1", "direct-only", "indirect-only")}
        interaction = claims[f"knockout.paths.interaction.{window}"]
        assert interaction.value == pytest.approx(
            cell["cut1"] - cell["direct-only"] - cell["indirect-only"], abs=1e-12)
        assert interaction.ci_low <= interaction.value <= interaction.ci_high
        difference = claims[f"knockout.paths.direct_minus_indirect.{window}"]
        assert difference.value == pytest.approx(cell["indirect-only"] - cell["direct-only"])
    # the kept run: removing the direct path costs more in every window
    assert all(claims[f"knockout.paths.direct_minus_indirect.{w}"].ci_low > 0
               for w in ("early", "middle", "late"))
