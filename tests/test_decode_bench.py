"""The decode-step benchmark's own arithmetic (benchmarks/decode_steps.py), against what a
decode step of the hf backend really does; and the GPU default dtype. Nothing is timed."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from decode_steps import HFLane, Lane, interleaved, step_work  # noqa: E402

from rsp_probe.models import resolve_dtype  # noqa: E402


def test_auto_dtype_is_bfloat16_on_cuda_and_float32_on_cpu():
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32


@pytest.fixture(scope="module")
def hf_model(tiny_qwen2):
    from rsp_probe.models import load_model

    return load_model(str(tiny_qwen2), backend="hf")


@pytest.mark.parametrize("context", [64, 100])
def test_step_work_counts_what_a_probed_decode_step_multiplies_and_reads(hf_model, context):
    lane = Lane(hf_model, context, True, batch=3, clock=time.process_time)
    with FlopCounterMode(display=False) as counter:
        lane.step()
    work = step_work(hf_model, 3, context)
    assert counter.get_total_flops() == work["weight_flops"] + work["attention_flops"]
    layers = lane.cache.layers
    cached = sum(t.numel() * t.element_size() for layer in layers
                 for t in (layer.keys, layer.values))
    assert cached == work["kv_bytes"] * context // (context + 1)  # the step's own key aside


def test_lanes_keep_their_context_and_probes_deliver_every_step(hf_model):
    lanes = [Lane(hf_model, 64, True, 2, time.process_time),
             Lane(hf_model, 70, False, 2, time.process_time)]
    times = interleaved(lanes, 3)
    assert [len(t) for t in times] == [3, 3] and all(s >= 0 for t in times for s in t)
    assert [lane.cache.get_seq_length() for lane in lanes] == [64, 70]
    mass = lanes[0].probes[-1].values["rsp_attention"]  # filled at every layer and head
    assert mass.shape[2:] == (hf_model.info.n_layers, hf_model.info.n_heads)
    assert bool((mass[:, 0] > 0).all()) and bool((mass[:, 0] < 1).all())


@pytest.mark.parametrize("probes", [True, False])
def test_hf_lane_takes_the_same_step_as_ours_from_the_same_cache(hf_model, tiny_qwen2, probes):
    """The reference lane does the same work: from identically drawn caches and tokens,
    Hugging Face's own step (sdpa, DynamicCache) and ours give the same logits, and both
    return to their context after each step."""
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(str(tiny_qwen2), attn_implementation="sdpa")
    torch.manual_seed(7)
    ours = Lane(hf_model, 64, probes, 3, time.process_time)
    torch.manual_seed(7)
    theirs = HFLane(hf.eval(), 64, 3, time.process_time)
    interleaved([ours, theirs], 2)
    torch.testing.assert_close(theirs.logits, ours.logits, atol=1e-4, rtol=0)
    assert ours.cache.get_seq_length() == theirs.cache.get_seq_length() == 64
    assert bool((ours.logits.std(-1) > 0).all())  # a real distribution, not a constant


def _leaf():
    return sum(i * i for i in range(20000))


def _selected_inner():
    return _leaf() + _leaf()


def _selected_outer():
    return _selected_inner() + _leaf()


def test_time_inside_counts_nested_selected_calls_once():
    import cProfile
    import pstats

    from decode_steps import time_inside

    profile = cProfile.Profile(time.process_time)
    profile.enable()
    for _ in range(3):
        _selected_outer()
    _leaf()  # outside the selection
    profile.disable()
    stats = pstats.Stats(profile).stats
    cumulative = {key[2]: value[3] for key, value in stats.items()}
    selected = time_inside(stats, lambda key: key[2].startswith("_selected"))
    assert selected == pytest.approx(cumulative["_selected_outer"], rel=1e-9)
    assert selected < cumulative["_selected_outer"] + cumulative["_selected_inner"]
    assert selected < cumulative["_leaf"]  # the unselected call of _leaf is left out
