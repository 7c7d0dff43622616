"""The exact pairwise agreement probability sum_v p_a p_b: enumeration on constructed
distributions, the branching run's stored values against an independent Hugging Face forward
pass, and the first-divergence prediction built from them (EOS: a shared end is agreement)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import rsp_probe
from rsp_probe.analysis.divergence import temperature_prediction, trajectory_pairs
from rsp_probe.analysis.prefix_tree import first_divergence_counts
from rsp_probe.analysis.tables import PAIR_OVERLAP_FILE
from rsp_probe.analysis.theory_report import branching_section
from rsp_probe.analysis.theory_stats import branching_statistics
from rsp_probe.claims import compute_claims
from rsp_probe.theory import collision_hazard, pair_overlap, simulated_tv_null
from rsp_probe.theory.branching import first_divergence_pmf

SMALL = {"n_prompts": 2, "max_new_tokens": 6, "batch_size": 8}


def test_pair_overlap_equals_enumerating_both_samples():
    """Two independent samples over a 3-token vocabulary: P(same) by listing all 9 outcomes."""
    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(3), size=4), rng.dirichlet(np.ones(3), size=4)
    brute = [sum(p[t, u] * q[t, v] for u, v in itertools.product(range(3), repeat=2) if u == v)
             for t in range(4)]
    np.testing.assert_allclose(pair_overlap(p, q, None), brute, atol=1e-15)
    np.testing.assert_allclose(pair_overlap(p, q, 2), brute[:2], atol=1e-15)
    # the old bound 1 - sqrt(C_a C_b) never exceeds the exact hazard (Cauchy-Schwarz) and is
    # strictly below it when the two distributions differ
    bound = 1 - np.sqrt((p**2).sum(-1) * (q**2).sum(-1))
    assert np.all(bound < collision_hazard(p, other=q))
    with pytest.raises(ValueError, match="beyond"):
        pair_overlap(p, q[:2], 3)


def test_first_divergence_of_two_sampled_paths_by_enumeration():
    """Two-step sequences of two samplers with step-2 distributions depending on step 1:
    P(first divergence = 1, 2, never) by enumerating all 9 x 9 outcome pairs, against the
    hazards 1 - sum p_a p_b along the shared prefix."""
    rng = np.random.default_rng(3)
    a1, b1 = rng.dirichlet(np.ones(3)), rng.dirichlet(np.ones(3))
    a2, b2 = rng.dirichlet(np.ones(3), size=3), rng.dirichlet(np.ones(3), size=3)
    brute = np.zeros(3)
    for (u1, u2, v1, v2) in itertools.product(range(3), repeat=4):
        prob = a1[u1] * a2[u1, u2] * b1[v1] * b2[v1, v2]
        brute[0 if u1 != v1 else 1 if u2 != v2 else 2] += prob
    # given agreement on token x at step 1, the step-2 hazard is 1 - sum a2[x] b2[x]
    agree = a1 * b1
    h1 = 1 - agree.sum()
    h2 = 1 - (agree * (a2 * b2).sum(-1)).sum() / agree.sum()
    pmf = first_divergence_pmf([h1, h2])
    np.testing.assert_allclose(pmf.as_array(), brute, atol=1e-12)


def test_tv_null_is_small_for_a_correct_prediction_and_rejects_a_wrong_one():
    predicted = np.array([0.5, 0.3, 0.2])
    assert simulated_tv_null(predicted, 400, 0.3)["p_value"] < 0.01
    assert simulated_tv_null(predicted, 400, 0.0)["p_value"] == 1.0
    null = simulated_tv_null(predicted, 400, 0.02, seed=1)
    assert 0 < null["null_median"] < null["null_q95"] < 0.1


def _hf_probs(hf, model, record, rsp, n_steps, temperature):
    from rsp_probe.probes.pair_overlap import input_ids_with_slots
    from rsp_probe.rsp import build_inputs_embeds

    ids = input_ids_with_slots(record)
    prompt = build_inputs_embeds(model.embedding_table, ids, list(record["rsp_positions"]),
                                 torch.as_tensor(rsp))
    tokens = model.embedding_table[torch.tensor(record["generated_token_ids"][:n_steps - 1],
                                                dtype=torch.long)]
    with torch.no_grad():
        logits = hf(inputs_embeds=torch.cat([prompt, tokens])[None]).logits[0]
    start = len(ids) - 1
    return torch.softmax(logits[start:start + n_steps].double() / temperature, -1).numpy()


def test_branching_stores_exact_pair_overlaps(loaded_qwen2, hf_qwen2, tmp_path):
    # ~10 s on 2 cores: one real branching run (2 prompts x 3 draws x 6 tokens) is the
    # only way to check the stored values against an independent forward pass
    run, _ = rsp_probe.branching(model=loaded_qwen2, samples=3, conditions=("temp+rsp",),
                                 out=str(tmp_path / "r"), **SMALL)
    table = run.table(PAIR_OVERLAP_FILE)
    traj = run.trajectories.set_index("id", drop=False)
    vectors = run.rsp_vectors()
    pairs = trajectory_pairs(run.trajectories)
    assert len(table.groupby(["a", "b"])) == len(pairs) == 2 * 3
    for pair in pairs:
        stored = table[(table["a"] == pair.a) & (table["b"] == pair.b)].sort_values("step")
        assert stored["step"].tolist() == list(range(1, pair.together + 1))
        p_a, p_b = (_hf_probs(hf_qwen2, loaded_qwen2, traj.loc[i].to_dict(), vectors[i],
                              pair.together, 1.0) for i in (pair.a, pair.b))
        np.testing.assert_allclose(stored["overlap"], (p_a * p_b).sum(-1), atol=1e-5)
    result = temperature_prediction(run, "temp+rsp")
    assert result["hazard"] == "exact"
    # the observed distribution is the raw histogram of the prefix tree (never = identical)
    counts = {}
    for _, group in run.trajectories.groupby("prompt_id"):
        for step, count in first_divergence_counts(group["generated_token_ids"]).items():
            counts[step] = counts.get(step, 0) + count
    assert result["observed"].never == pytest.approx(counts.get(-1, 0) / len(pairs))
    assert result["predicted"].as_array().sum() == pytest.approx(1.0)
    stats = branching_statistics(run)["temp+rsp"]
    assert stats["hazard"] == "exact" and stats["tv"] == pytest.approx(result["tv"])
    assert 0.0 <= stats["null"]["p_value"] <= 1.0
    assert "1 − Σ p_a p_b (exact)" in "\n".join(branching_section(run))
    # the theory claim states the exact hazard's TV and its simulated-null p
    table = compute_claims({"branching": run}, only=["branching-hazards"])
    claim = table.by_id()["theory.hazard.collision.temp+rsp"]
    assert claim.value == stats["tv"] and claim.n == len(pairs) and not table.unmeasured
    assert f"(p = {stats['null']['p_value']:.3f})" in claim.sentence


EOS = 0


def test_a_shared_eos_is_agreement_not_censoring():
    """Pair (0, 1) ends together on EOS at step 2; pair (0, 2) and (1, 2) split at step 2
    when trajectory 2 continues. The shared end counts as never diverging (as in the prefix
    tree), and its hazard after the end is 0, not missing."""
    import pandas as pd

    from rsp_probe.analysis.divergence import first_divergence_prediction

    traj = pd.DataFrame({"id": ["x", "y", "z"], "prompt_id": "p",
                         "generated_token_ids": [[5, EOS], [5, EOS], [5, 7, 8, EOS]],
                         "n_steps": [2, 2, 4]})
    pairs = trajectory_pairs(traj)
    assert [(p.first, p.together) for p in pairs] == [(None, 2), (2, 2), (2, 2)]
    hazards = np.full((3, 4), np.nan)
    hazards[0] = [0.1, 0.2, 0.0, 0.0]  # ended together: still at risk, hazard 0
    hazards[1, :2] = hazards[2, :2] = [0.1, 0.9]
    result = first_divergence_prediction(pairs, hazards, 4)
    np.testing.assert_allclose(result["observed"].as_array(), [0, 2 / 3, 0, 0, 1 / 3])
    expected = first_divergence_pmf([0.1, (0.2 + 0.9 + 0.9) / 3, 0.0, 0.0])
    np.testing.assert_allclose(result["predicted"].as_array(), expected.as_array())
