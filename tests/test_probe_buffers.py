"""The logit probes as the sampler drives them (record at each step, then finalize to each
row's own length), on hand-made logits against numpy: no model, fast enough for `make mutate`.
Against a full forward pass of a real model: test_references_probes.py."""

from __future__ import annotations

import numpy as np
import torch

from rsp_probe.probes.base import BatchContext
from rsp_probe.probes.logits import CollisionProbe, LogitProbe

TEMPERATURES = np.array([0.0, 0.5, 2.0])
N_STEPS = [3, 2, 1]  # rows stop at different steps


def _context() -> BatchContext:
    rows = len(TEMPERATURES)
    return BatchContext(n_rows=rows, max_steps=3, n_layers=1, n_heads=1,
                        device=torch.device("cpu"), rsp_key_mask=torch.zeros(rows, 2),
                        temperature=torch.tensor(TEMPERATURES[:, None], dtype=torch.float32))


def _logits(step: int) -> np.ndarray:
    rng = np.random.default_rng(step)
    return rng.normal(scale=2.0, size=(len(TEMPERATURES), 7))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_logit_and_collision_probes_record_each_step_of_each_row():
    context = _context()
    probes = [LogitProbe(context), CollisionProbe(context)]
    for step in (1, 2, 3):
        for probe in probes:
            probe.begin_step(step)
            probe.record(step, torch.tensor(_logits(step), dtype=torch.float32))
            probe.check_step()
    logit_rows, collision_rows = (probe.finalize(N_STEPS) for probe in probes)
    for row, n in enumerate(N_STEPS):
        logits = np.stack([_logits(step)[row] for step in range(1, n + 1)])  # [n, V]
        p = _softmax(logits)
        top2 = np.sort(logits, axis=-1)[:, ::-1][:, :2]
        expected = {"entropy": -(p * np.log(p)).sum(-1), "top1_prob": p.max(-1),
                    "margin": top2[:, 0] - top2[:, 1]}
        assert sorted(logit_rows[row]) == sorted(expected)
        for name, values in expected.items():
            np.testing.assert_allclose(logit_rows[row][name], values, rtol=1e-5, atol=1e-6)
        tau = TEMPERATURES[row]
        collision = (_softmax(logits / tau) ** 2).sum(-1) if tau > 0 else np.ones(n)
        (values,) = collision_rows[row].values()
        np.testing.assert_allclose(values, collision, rtol=1e-5)
        assert len(values) == n
