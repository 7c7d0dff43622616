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


def _record_steps(temperatures: list[float]):
    """LogitProbe and CollisionProbe over three steps of random logits at `temperatures`."""
    rows = len(temperatures)
    context = BatchContext(n_rows=rows, max_steps=3, n_layers=1, n_heads=1,
                           device=torch.device("cpu"), rsp_key_mask=torch.zeros(rows, 2),
                           temperature=torch.tensor(temperatures)[:, None])
    probes = [LogitProbe(context), CollisionProbe(context)]
    logits = [np.random.default_rng(step).normal(scale=3.0, size=(rows, 11))
              for step in (1, 2, 3)]
    for step, step_logits in enumerate(logits, start=1):
        tensor = torch.tensor(step_logits, dtype=torch.float32)
        for probe in probes:
            probe.record(step, tensor)
    return [probe.finalize([3] * rows) for probe in probes], np.stack(logits, axis=1)


def test_collision_of_an_all_greedy_batch_is_one_and_of_tau_one_the_plain_softmax():
    """The two shortcuts (no softmax for greedy batches, the logit probes' shared softmax
    when every row is at tau = 1) against numpy."""
    (_, greedy), _ = _record_steps([0.0, 0.0])
    for row in greedy:
        np.testing.assert_array_equal(row["collision"], np.ones(3))
    (logit_rows, unit), logits = _record_steps([1.0, 1.0])
    for row, values in enumerate(unit):
        p = _softmax(logits[row])
        np.testing.assert_allclose(values["collision"], (p ** 2).sum(-1), rtol=1e-6)
        np.testing.assert_allclose(logit_rows[row]["top1_prob"], p.max(-1), rtol=1e-6)
        np.testing.assert_allclose(logit_rows[row]["entropy"], -(p * np.log(p)).sum(-1),
                                   rtol=1e-5)


def test_the_shared_distribution_follows_new_and_modified_logits():
    from rsp_probe.probes.logits import step_distribution

    logits = torch.tensor(_logits(1), dtype=torch.float32)
    first = step_distribution(logits)[1].clone()
    np.testing.assert_allclose(first.numpy(), _softmax(_logits(1)), rtol=1e-6)
    logits[:, 0] += 5.0  # in place: the remembered result must not be served
    np.testing.assert_allclose(step_distribution(logits)[1].numpy(),
                               _softmax(logits.double().numpy()), rtol=1e-6)
    other = torch.tensor(_logits(2), dtype=torch.float32)
    np.testing.assert_allclose(step_distribution(other)[1].numpy(), _softmax(_logits(2)),
                               rtol=1e-6)


def test_one_step_computes_its_distribution_once_also_for_inference_tensors():
    """The sampler's logits are inference tensors (no version counter): the probes of one
    step share one log_softmax of them, which equals the plain one."""
    from rsp_probe.probes.logits import step_distribution

    with torch.inference_mode():
        logits = torch.tensor(_logits(3), dtype=torch.float32)
        log_probs, probs = step_distribution(logits)
        again = step_distribution(logits)
    assert again[0] is log_probs and again[1] is probs
    np.testing.assert_allclose(probs.numpy(), _softmax(_logits(3)), rtol=1e-6)
    np.testing.assert_allclose(log_probs.numpy(), np.log(_softmax(_logits(3))), rtol=1e-6,
                               atol=1e-6)


def test_the_shared_distribution_is_released_with_its_logits():
    """Nothing keeps a finished step's [B, V] tensors alive (on a GPU at B = 64 and a
    Qwen vocabulary they are ~120 MB): they go when the logits go, and a later step's
    result is not dropped when an earlier step's logits are freed."""
    import gc
    import weakref

    from rsp_probe.probes import logits as module

    with torch.inference_mode():
        first = torch.tensor(_logits(1), dtype=torch.float32)
        probs = weakref.ref(module.step_distribution(first)[1])
        del first
        gc.collect()
        assert probs() is None and module._latest == []
        earlier = torch.tensor(_logits(1), dtype=torch.float32)
        module.step_distribution(earlier)
        later = torch.tensor(_logits(2), dtype=torch.float32)
        kept = module.step_distribution(later)
        del earlier
        gc.collect()
        assert module.step_distribution(later)[1] is kept[1]  # still served from memory
        del later
        gc.collect()
    assert module._latest == []


def test_masked_and_underflowing_logits_count_zero_and_nan_logits_stay_nan():
    """0 log 0 = 0 for a masked (-inf) logit and for one whose probability underflows to 0;
    a row with a NaN logit reports NaN, never a plausible number."""
    from rsp_probe.probes.logits import logit_probes

    rows = np.array([[0.0, 0.0, -np.inf, 1.0], [0.0, -1e4, 2.0, 1.0], [0.0, np.nan, 1.0, 2.0]])
    with torch.inference_mode():
        values = logit_probes(torch.tensor(rows, dtype=torch.float32))
    finite = np.where(np.isinf(rows[:2]), -1e30, rows[:2])
    p = _softmax(finite)
    expected = -(p * np.log(np.where(p > 0, p, 1.0))).sum(-1)
    np.testing.assert_allclose(values["entropy"][:2].numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(values["top1_prob"][:2].numpy(), p.max(-1), rtol=1e-6)
    assert bool(torch.isnan(values["entropy"][2]))


def test_logit_probes_of_bfloat16_logits_equal_those_of_the_widened_logits():
    """Every value in float32 arithmetic: a margin subtracted in bfloat16 would round."""
    from rsp_probe.probes.logits import logit_probes

    logits = torch.tensor(_logits(3) * 7.3, dtype=torch.bfloat16)
    low, wide = logit_probes(logits), logit_probes(logits.float())
    for name in wide:
        assert low[name].dtype == torch.float32
        torch.testing.assert_close(low[name], wide[name], rtol=0, atol=0)
