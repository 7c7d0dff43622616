"""The attention-budget maths (rsp_probe.theory.budget) against logits drawn at random:
advantages read from masses equal log-mean-exp differences of the logits, and the split of
logit(m_t) - logit(m_1) adds up."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rsp_probe.key_groups import group_sizes, input_key_groups
from rsp_probe.theory.budget import dilution_share, group_advantage, logit_decomposition


def _lme(values):
    return np.log(np.exp(values).mean())


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 6), st.integers(1, 10), st.integers(1, 6), st.integers(0, 2**31))
def test_advantage_from_masses_is_the_lme_difference(k, n_prompt, n_other, seed):
    rng = np.random.default_rng(seed)
    rsp, prompt, other = (rng.normal(0, 2, size) for size in (k, n_prompt, n_other))
    z = np.exp(np.concatenate([rsp, prompt, other])).sum()
    masses = [np.exp(group).sum() / z for group in (rsp, prompt)]
    advantage = group_advantage(masses[0], k, masses[1], n_prompt)
    np.testing.assert_allclose(advantage, _lme(rsp) - _lme(prompt), atol=1e-10)


def test_decomposition_adds_up_and_constant_advantage_is_pure_dilution():
    rng = np.random.default_rng(0)
    k, n, steps = 4, 9, np.arange(1, 30)
    delta = 1.5 - 0.05 * steps + rng.normal(0, 0.1, steps.size)  # suppressed over time
    mass = 1 / (1 + np.exp(-(np.log(k) + delta - np.log(n + steps - 1))))
    parts = logit_decomposition(mass, k, n, steps)
    np.testing.assert_allclose(parts["delta"], delta, atol=1e-9)
    np.testing.assert_allclose(parts["total"], parts["dilution"] + parts["suppression"],
                               atol=1e-9)
    constant = 1 / (1 + np.exp(-(np.log(k) + 0.3 - np.log(n + steps - 1))))
    flat = logit_decomposition(constant, k, n, steps)
    assert dilution_share(flat["dilution"][1:], flat["total"][1:]) == pytest.approx(1.0, abs=1e-9)
    assert 0 < dilution_share(parts["dilution"][1:], parts["total"][1:]) < 1


def test_key_groups_partition_the_input():
    # suffix: BOS, 4 question tokens, 3 RSP slots, 2 cue tokens
    codes = input_key_groups(10, [5, 6, 7], n_cue=2)
    assert codes == [1, 2, 2, 2, 2, 0, 0, 0, 3, 3]
    assert group_sizes(10, [5, 6, 7], 2) == {"rsp": 3, "bos": 1, "prompt": 4, "cue": 2}
    # prefix placement right at position 0 (no BOS): the RSP takes the sink's place
    assert group_sizes(6, [0, 1], 1) == {"rsp": 2, "bos": 0, "prompt": 3, "cue": 1}
