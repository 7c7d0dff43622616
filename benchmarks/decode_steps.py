"""Single decode steps timed side by side: what the probes cost per step, and how a step's
time grows with the context. Used by sampler.py (not a command of its own).

Whole runs on a shared machine move by 10-15% between runs, more than the effects measured
here. So each condition is a "lane": its own batch mid-generation on the hf backend, with a
KV cache of a fixed number of positions (the newest position is dropped again after each
step, so every step sees exactly that context). The timer alternates between the lanes step
by step, the order reversed every round, so that a change in the machine's load hits every
lane alike; each lane's time is the median over its steps, and the spread is the quartiles
of the per-round ratio. Hugging Face's own decode step (HFLane) runs in the same rotation:
the reference for the step's speed and for how its time grows with the context.

Next to the measured context ratio stands what the work itself predicts: the FLOP ratio
(weights at 2 FLOP per parameter per token, plus 4 x heads x head_dim FLOP per cached
position per layer for q.k and p.v), and a time model that charges the weights' FLOP at the
machine's measured matmul rate and the K/V cache's bytes at a measured read bandwidth (one
query row per sequence reads every cached key and value once: memory-bound), twice: at the
rate of a plain sum over them (the memory's) and at the rate the backend's decode attention
reads them (what a step gets).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch

from rsp_probe.backends.hf import in_place_cache
from rsp_probe.probes.base import DEFAULT_PROBES, BatchContext, build_probes

RSP_TOKENS, PROMPT_TOKENS = 8, 49  # BOS + 48 prompt tokens, then the RSP slots


class Lane:
    """`batch` rows with `context` cached positions (the first PROMPT_TOKENS + RSP_TOKENS
    the input, the rest generated), stepping as the sampler does, probes on or off."""

    def __init__(self, model, context: int, probes: bool, batch: int, clock: Callable):
        self.model, self.clock = model, clock
        device = model.device
        self.cache = _fill_randomly(in_place_cache(model.info.n_layers, context + 1),
                                    model.model.config, batch, context, model.dtype, device)
        n_input = PROMPT_TOKENS + RSP_TOKENS
        rsp_keys = torch.zeros(batch, n_input, device=device)
        rsp_keys[:, PROMPT_TOKENS:] = 1.0
        context_ = BatchContext(batch, 1, model.info.n_layers, model.info.n_heads, device,
                                rsp_keys, torch.zeros(batch, 1, device=device))
        self.probes = build_probes(DEFAULT_PROBES if probes else (), context_)
        self.taps = [tap for probe in self.probes for tap in probe.taps()]
        self.mask = torch.ones(batch, context + 1, dtype=torch.long, device=device)
        self.positions = torch.full((batch, 1), context, device=device)
        self.tokens = torch.randint(5, 200, (batch,), device=device)
        self.logits = None  # the last step's [batch, vocab]

    @torch.inference_mode()
    def step(self) -> float:
        """Seconds of one decode step with everything the sampler does around it."""
        with self.model.tapped(self.taps):
            start = self.clock()
            for probe in self.probes:
                probe.begin_step(1)
            last, cache = self.model.decode(self.tokens[:, None], self.mask, self.positions,
                                            self.cache)
            for probe in self.probes:
                probe.record(1, last)
                probe.check_step()
            self.tokens = last.argmax(-1)
            _sync(self.model)
            seconds = self.clock() - start
        self.cache = self.model.rewind(cache, 1)  # back to `context` positions
        self.logits = last
        return seconds


class HFLane:
    """Hugging Face's own decode step on the same checkpoint: the model loaded with sdpa
    attention, its DynamicCache (what generate() uses; it concatenates on every update)
    holding `context` random positions drawn exactly as Lane draws them, one model call and
    the argmax per step. generate()'s logits processing and stopping checks are not timed,
    so this is a lower bound of generate()'s step."""

    def __init__(self, hf_model, context: int, batch: int, clock: Callable):
        from transformers import DynamicCache

        self.model, self.clock = hf_model, clock
        config, device = hf_model.config, hf_model.device
        self.cache = _fill_randomly(DynamicCache(config=config), config, batch, context,
                                    hf_model.dtype, device)
        self.mask = torch.ones(batch, context + 1, dtype=torch.long, device=device)
        self.positions = torch.full((batch, 1), context, device=device)
        self.tokens = torch.randint(5, 200, (batch,), device=device)
        self.logits = None

    @torch.inference_mode()
    def step(self) -> float:
        start = self.clock()
        out = self.model(input_ids=self.tokens[:, None], attention_mask=self.mask,
                         position_ids=self.positions, past_key_values=self.cache,
                         use_cache=True, logits_to_keep=1)
        self.tokens = out.logits[:, -1].argmax(-1)
        _sync(self.model)
        seconds = self.clock() - start
        self.cache.crop(-1)  # back to `context` positions
        self.logits = out.logits[:, -1]
        return seconds


def interleaved(lanes: list[Lane | HFLane], steps: int) -> list[list[float]]:
    """Per lane, the seconds of `steps` decode steps, the lanes alternating step by step
    (order reversed every round); one untimed step each first."""
    for lane in lanes:
        lane.step()
    times: list[list[float]] = [[] for _ in lanes]
    for round_ in range(steps):
        order = range(len(lanes)) if round_ % 2 == 0 else reversed(range(len(lanes)))
        for index in order:
            times[index].append(lanes[index].step())
    return times


def ratio_summary(numerator: list[float], denominator: list[float]) -> dict:
    """Ratio of the medians, and the quartiles of the per-round ratios."""
    per_round = [n / d for n, d in zip(numerator, denominator)]
    q1, _, q3 = statistics.quantiles(per_round, n=4)
    return {"ratio": statistics.median(numerator) / statistics.median(denominator),
            "q1": q1, "q3": q3}


def _fill_randomly(cache, config, batch: int, context: int, dtype, device):
    """`cache` (any transformers Cache) with `context` random positions in every layer:
    decode cost does not depend on the cached values, and a real prefill of 32 x 512 tokens
    takes minutes on a 2-core CPU. Both lanes draw through here, in the same order."""
    shape = (batch, config.num_key_value_heads, context, _head_dim(config))
    for layer in range(config.num_hidden_layers):
        cache.update(torch.randn(shape, dtype=dtype, device=device),
                     torch.randn(shape, dtype=dtype, device=device), layer)
    return cache


def _head_dim(config) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def _sync(model) -> None:
    if model.device.type == "cuda":
        torch.cuda.synchronize()


@torch.inference_mode()
def kv_read_bandwidths(model, batch: int, context: int, clock: Callable,
                       repeats: int = 3) -> dict:
    """Bytes per second at which one decode step reads every layer's K/V cache (as large
    as a step's reads: no CPU cache holds them), best of `repeats`: "stream" reads them
    with a plain sum (the memory's rate), "attention" with the hf backend's decode attention
    (tapped_sdpa, one query row per sequence, no taps), the rate the step really gets."""
    from rsp_probe.backends.hf import tapped_sdpa

    config = model.model.config
    shape = (model.info.n_layers, batch, config.num_key_value_heads, context, _head_dim(config))
    keys, values = (torch.randn(shape, dtype=model.dtype, device=model.device) for _ in "kv")
    query = torch.randn(batch, config.num_attention_heads, 1, shape[-1], dtype=model.dtype,
                        device=model.device)
    attention = model.model.model.layers[0].self_attn

    def stream() -> None:
        keys.sum(dim=-1)
        values.sum(dim=-1)

    def attend() -> None:
        for layer in range(shape[0]):
            tapped_sdpa(attention, query, keys[layer], values[layer], None)

    rates = {}
    for name, read in (("stream", stream), ("attention", attend)):
        best = float("inf")
        for _ in range(repeats):
            start = clock()
            read()
            _sync(model)
            best = min(best, clock() - start)
        rates[name] = 2 * keys.numel() * keys.element_size() / best
    return rates


def step_work(model, batch: int, context: int) -> dict:
    """The matmul FLOP of one decode step with `context` cached positions (the step's query
    attends to context + 1 keys), split into the weights' and attention's, and the bytes of
    K/V cache it reads."""
    config = model.model.config
    weights = sum(m.weight.numel() for m in model.model.modules()
                  if isinstance(m, torch.nn.Linear))
    keys, layers = context + 1, model.info.n_layers
    head_dim = _head_dim(config)
    return {"weight_flops": 2 * batch * weights,
            "attention_flops": 4 * batch * layers * config.num_attention_heads * head_dim * keys,
            "kv_bytes": (2 * batch * layers * config.num_key_value_heads * head_dim * keys
                         * torch.finfo(model.dtype).bits // 8)}


def intrinsic(model, batch: int, contexts: tuple[int, int], matmul_flops_per_s: float,
              bandwidths: dict) -> dict:
    """What the work predicts for the step at contexts[1] over contexts[0]: the FLOP ratio,
    and per bandwidth (kv_read_bandwidths) a time model: the weights' FLOP at the matmul
    rate plus the K/V bytes at that bandwidth."""
    short, long = (step_work(model, batch, context) for context in contexts)

    def seconds(work: dict, bandwidth: float) -> float:
        return work["weight_flops"] / matmul_flops_per_s + work["kv_bytes"] / bandwidth

    def flops(work: dict) -> float:
        return work["weight_flops"] + work["attention_flops"]

    return {"flop_ratio": flops(long) / flops(short), "kv_mb_long": long["kv_bytes"] / 1e6,
            "models": {name: {"ratio": seconds(long, rate) / seconds(short, rate),
                              "short_ms": 1e3 * seconds(short, rate),
                              "long_ms": 1e3 * seconds(long, rate), "gb_s": rate / 1e9}
                       for name, rate in bandwidths.items()}}


def time_inside(stats: dict, inside: Callable[[tuple], bool]) -> float:
    """Seconds spent in functions that `inside(key)` selects, callees included, from a
    pstats `stats` dict ({(file, line, name): (cc, nc, tottime, cumtime, callers)}): each
    selected function's cumulative time from callers that are not selected themselves, so
    nested selected calls are not counted twice. A function without recorded callers was
    called from the frame that started the profiler: all of its time counts."""
    total = 0.0
    for key, (_, _, _, cumulative, callers) in stats.items():
        if inside(key):
            total += cumulative if not callers else sum(
                time for caller, (*_, time) in callers.items() if not inside(caller))
    return total


def in_probe_code(key: tuple) -> bool:
    """The probes' own code: rsp_probe/probes/ and the hf backend's key-mass reduction."""
    filename, _, name = key
    return "rsp_probe/probes/" in filename or (filename.endswith("backends/hf.py")
                                              and name == "_key_mass")
