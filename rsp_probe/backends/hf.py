"""The fast backend: the Hugging Face model itself, sdpa attention, an in-place KV cache.

No TransformerLens and no hook points. Attention sites are delivered by one function
registered in transformers' attention-function registry (ATTENTION_NAME). A prefill is
sdpa; a decode step is one row of scores per head (the newest query against every key, same
mask and scaling), softmax, times V; the taps read those probabilities, so full patterns are
never materialised and probe memory stays O(layers x heads x steps) per trajectory. A tap
that replaces the scores (an intervention) is the same product with edited scores.

Residual sites use PyTorch forward hooks on the decoder layers, removed on exit. The layers
are found through the model's own structure (`decoder_layers`), so GPT-2 (`transformer.h`)
and GPT-NeoX (`gpt_neox.layers`) work as Llama-shaped models do; a model this backend cannot
run faithfully raises UnsupportedModelError, on which `--backend auto` falls back.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from rsp_probe.backends.base import (
    ATTN_KEY_MASS,
    ATTN_PATTERN,
    ATTN_SCORES,
    FEATURES,
    RESID_POST,
    Tap,
    check_taps,
)
from rsp_probe.backends.checkpoint import (
    ModelInfo,
    context_length,
    load_tokenizer,
    model_info,
    one_line,
    refuse_remote_code,
)
from rsp_probe.backends.hf_structure import (
    UnsupportedModelError,
    check_attention_math,
    decoder_layers,
    input_embedding_table,
)
from rsp_probe.errors import KVCacheSelfTestError, UsageError

NAME = "hf"
SUPPORTED = frozenset(FEATURES)  # every site, the KV cache, and interventions
# No "sdpa" in the name: transformers refuses a name containing it for a model that cannot
# run sdpa (Gemma 2, for its soft-capping), which this function computes; check_attention_math
# keeps refusing the models that cannot run sdpa for any other reason.
ATTENTION_NAME = "rsp_probe_tapped"
_TAPS_KWARG = "rsp_probe_taps"  # travels from model(...) down to the attention function
_CACHE_HEADROOM = 256  # positions allocated beyond the prompt; the cache doubles when full


class HFBackend:
    """A Hugging Face causal LM behind the Backend protocol; `model` stays reachable."""

    name = NAME

    def __init__(self, model, tokenizer, info: ModelInfo, dtype: torch.dtype,
                 device: torch.device):
        self.model = model  # transformers PreTrainedModel, attention = ATTENTION_NAME
        self.tokenizer = tokenizer
        self.info = info
        self.dtype = dtype
        self.device = device
        self.layers = decoder_layers(model)
        self._embedding_table = input_embedding_table(model)
        self._attention_taps: dict[int, list[Tap]] = defaultdict(list)  # layer -> taps

    @property
    def embedding_table(self) -> torch.Tensor:
        """What the model adds for each token id: Gemma's scaled rows, else the weight."""
        return self._embedding_table

    @property
    def eos_token_ids(self) -> set[int]:
        extra = getattr(self.model.generation_config, "eos_token_id", None)
        ids = {self.tokenizer.eos_token_id}
        ids |= set(extra) if isinstance(extra, (list, tuple)) else {extra}
        return {i for i in ids if i is not None}

    def supports(self, feature: str) -> bool:
        return feature in SUPPORTED

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def prefill(self, embeds: torch.Tensor, attention_mask: torch.Tensor,
                position_ids: torch.Tensor) -> tuple[torch.Tensor, Any]:
        cache = in_place_cache(self.info.n_layers, embeds.shape[1] + _CACHE_HEADROOM)
        return self._step({"inputs_embeds": embeds}, attention_mask, position_ids, cache)

    def decode(self, token_ids: torch.Tensor, attention_mask: torch.Tensor,
               position_ids: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        return self._step({"input_ids": token_ids}, attention_mask, position_ids, cache)

    def _step(self, inputs: dict, attention_mask, position_ids, cache):
        out = self.model(**inputs, attention_mask=attention_mask, position_ids=position_ids,
                         past_key_values=cache, use_cache=True, logits_to_keep=1,
                         **self._tap_kwargs())
        return out.logits[:, -1], cache

    def rewind(self, cache: Any, n_positions: int) -> Any:
        cache.crop(-n_positions)  # transformers' Cache: a negative count drops positions
        return cache

    def forward(self, embeds: torch.Tensor) -> torch.Tensor:
        return self.model(inputs_embeds=embeds, use_cache=False, **self._tap_kwargs()).logits

    def _tap_kwargs(self) -> dict:
        return {_TAPS_KWARG: self._attention_taps} if self._attention_taps else {}

    @contextlib.contextmanager
    def tapped(self, taps: Sequence[Tap]) -> Iterator[None]:
        check_taps(self, taps)
        added = [(layer, tap) for tap in taps if tap.site != RESID_POST for layer in tap.layers]
        handles = [self.layers[layer].register_forward_hook(_residual_hook(tap, layer))
                   for tap in taps if tap.site == RESID_POST for layer in tap.layers]
        for layer, tap in added:
            self._attention_taps[layer].append(tap)
        try:
            yield
        finally:  # remove exactly our own taps, also when nested or on error
            for handle in handles:
                handle.remove()
            for layer, tap in added:
                self._attention_taps[layer].remove(tap)
                if not self._attention_taps[layer]:
                    del self._attention_taps[layer]


def _residual_hook(tap: Tap, layer: int):
    def hook(module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output  # [B, Q, D]
        replaced = tap.fn(layer, hidden)
        if replaced is None:
            return None
        return (replaced, *output[1:]) if isinstance(output, tuple) else replaced

    return hook


# -- the attention function -------------------------------------------------------------------

def register_attention() -> None:
    """Register the tapped attention (with sdpa's mask format) as ATTENTION_NAME; idempotent."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, tapped_sdpa)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)


def tapped_sdpa(module, query, key, value, attention_mask, scaling=None, **kwargs):
    """transformers' sdpa attention, delivering this layer's taps on the way.

    query [B, H, Q, D], key/value [B, KV, K, D]; returns ([B, Q, H, D], None) like sdpa.
    Decode steps (Q = 1) compute softmax(q k^T) v as two grouped matmuls: on CPU that beats
    sdpa's kernel, and the probabilities the taps read come for free. So do forward passes
    whose taps need every query row, and soft-capped attention (Gemma 2's `softcap`), which
    sdpa does not compute. Otherwise sdpa computes the output, and the taps get the newest
    row (one row of scores per head). Score taps see the scores softmax reads (soft-capped).
    """
    by_layer = kwargs.pop(_TAPS_KWARG, None)
    softcap = kwargs.pop("softcap", None)  # Gemma 2; sdpa cannot compute it
    taps = (by_layer.get(module.layer_idx) if by_layer else None) or ()
    all_rows = query.shape[2] == 1 or softcap is not None or any(
        tap.site == ATTN_SCORES or not tap.newest_only for tap in taps)
    if not taps and not all_rows:
        return sdpa_attention_forward(module, query, key, value, attention_mask,
                                      scaling=scaling, **kwargs)
    scaling = scaling if scaling is not None else query.shape[-1] ** -0.5
    scores = attention_scores(query, key, attention_mask, scaling, newest_only=not all_rows,
                              softcap=softcap)
    for tap in taps:
        if tap.site == ATTN_SCORES:
            replaced = tap.fn(module.layer_idx, scores)  # an intervention returns new scores
            scores = scores if replaced is None else replaced.float()
    probs = torch.softmax(scores, dim=-1)  # [B, H, Q', K] float32
    for tap in taps:
        if tap.site in (ATTN_PATTERN, ATTN_KEY_MASS):
            rows = probs[:, :, -1:] if tap.newest_only else probs
            tap.fn(module.layer_idx, _key_mass(rows, tap.key_mask)
                   if tap.site == ATTN_KEY_MASS else rows)
    if all_rows:
        return _eager_output(probs, value), None
    return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling,
                                  **kwargs)


def attention_scores(query: torch.Tensor, key: torch.Tensor, attention_mask, scaling: float,
                     newest_only: bool, softcap: float | None = None) -> torch.Tensor:
    """Scaled, masked scores [B, H, Q', K] float32 of all queries, or of the last only (Q' = 1).

    softcap: scores become softcap * tanh(scores / softcap) before the mask, as Gemma 2's
    eager attention computes them.

    Grouped-query heads: head h reads key head h // (H / KV), as transformers' repeat_kv
    does, without repeating the keys. attention_mask: None (no padding; causal over the
    rows), boolean [B, 1, Q, K] (True = attend) or additive float. Masked keys get the
    dtype's minimum (as the eager mask does), so fully masked padding rows stay finite.
    """
    batch, n_heads, q_len, dim = query.shape
    n_kv, k_len = key.shape[1], key.shape[2]
    rows = query[:, :, -1:] if newest_only else query
    n_rows = rows.shape[2]
    grouped = rows.reshape(batch, n_kv, n_heads // n_kv * n_rows, dim)
    if query.dtype == torch.float32:  # scale the D-wide queries, not the K-wide scores
        scores = torch.matmul(grouped * scaling, key.transpose(-1, -2))
        scores = scores.reshape(batch, n_heads, n_rows, k_len)
    else:  # scale in float32: a low-precision query would round once more
        scores = torch.matmul(grouped, key.transpose(-1, -2)).float()  # [B, KV, rep*Q', K]
        scores = scores.reshape(batch, n_heads, n_rows, k_len) * scaling
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    lowest = torch.finfo(scores.dtype).min
    if attention_mask is None and n_rows == 1:  # the last query sees every key
        return scores
    if attention_mask is None:
        query_at = torch.arange(k_len - n_rows, k_len, device=scores.device)[:, None]
        allowed = torch.arange(k_len, device=scores.device)[None, :] <= query_at
        return scores.masked_fill(~allowed, lowest)
    mask = attention_mask[:, :, -n_rows:]
    if mask.dtype == torch.bool:
        return scores.masked_fill(~mask, lowest)
    return (scores + mask.float()).clamp(min=lowest)


def _key_mass(probs: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
    """[B, H, Q, K] probabilities summed over the first K0 keys weighted by key_mask [B, K0]."""
    n_keys = key_mask.shape[1]
    return (probs[..., :n_keys] * key_mask[:, None, None, :].float()).sum(-1)


def _eager_output(probs: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """softmax(scores) @ V for grouped-query heads: [B, H, Q, K] x [B, KV, K, D] -> [B, Q, H, D]."""
    batch, n_heads, q_len, k_len = probs.shape
    n_kv = value.shape[1]
    grouped = probs.to(value.dtype).reshape(batch, n_kv, n_heads // n_kv * q_len, k_len)
    out = torch.matmul(grouped, value).reshape(batch, n_heads, q_len, value.shape[-1])
    return out.transpose(1, 2).contiguous()


# -- the KV cache -----------------------------------------------------------------------------

class _InPlaceLayer(DynamicLayer):
    """A KV-cache layer written in place into preallocated buffers.

    DynamicLayer concatenates on every step, copying the whole cache (O(context) per token);
    here an update copies only the new positions and returns views of the filled part, and
    the buffers double when full (amortised O(1) per token).
    """

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self.length = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        self._keys = _buffer(key_states, self.capacity)
        self._values = _buffer(value_states, self.capacity)
        self.is_initialized = True

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            self.capacity = max(end, 2 * self.capacity)
            self._keys = _buffer(self._keys[:, :, :self.length], self.capacity)
            self._values = _buffer(self._values[:, :, :self.length], self.capacity)
        self._keys[:, :, self.length:end] = key_states
        self._values[:, :, self.length:end] = value_states
        self.length = end
        self.keys, self.values = self._keys[:, :, :end], self._values[:, :, :end]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def crop(self, tokens_to_remove: int) -> None:
        """Drop the newest -tokens_to_remove positions (transformers' sign convention);
        the buffers keep them until the next update overwrites them."""
        if tokens_to_remove > 0:
            raise ValueError(f"crop takes a negative count, got {tokens_to_remove}")
        if not self.is_initialized or tokens_to_remove == 0:
            return
        self.length = max(0, self.length + tokens_to_remove)
        self.keys = self._keys[:, :, :self.length]
        self.values = self._values[:, :, :self.length]


def _buffer(filled: torch.Tensor, capacity: int) -> torch.Tensor:
    """An empty [B, H, capacity, D] buffer whose first positions hold `filled`."""
    batch, heads, length, dim = filled.shape
    buffer = filled.new_empty(batch, heads, capacity, dim)
    buffer[:, :, :length] = filled
    return buffer


def in_place_cache(n_layers: int, capacity: int) -> Cache:
    """An empty decode cache for `n_layers` layers; prefill makes one, benchmarks fill one."""
    return Cache(layers=[_InPlaceLayer(capacity) for _ in range(n_layers)])


# -- loading ----------------------------------------------------------------------------------

def load(path: Path, name: str, revision: str | None, dtype: torch.dtype,
         device: torch.device, self_test: bool = True, trust_remote_code: bool = False
         ) -> HFBackend:
    """Load a local checkpoint directory with transformers, attention = ATTENTION_NAME."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    register_attention()
    tokenizer = load_tokenizer(path, trust_remote_code)
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # stderr is for the one-line error, not "Loading weights"
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(path), dtype=dtype, attn_implementation=ATTENTION_NAME, local_files_only=True,
            trust_remote_code=trust_remote_code)
    except ValueError as err:
        if "attention implementation" in str(err):  # e.g. Gemma 2 accepts eager only
            raise UnsupportedModelError(f"{path}: transformers runs this model with eager "
                                        "attention only; use --backend transformer-lens"
                                        ) from None
        refuse_remote_code(path, err)
        raise UsageError(f"{path}: cannot be loaded as a transformers causal LM "
                         f"({one_line(err)})") from err
    except (OSError, KeyError) as err:
        raise UsageError(f"{path}: cannot be loaded as a transformers causal LM "
                         f"({one_line(err)})") from err
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    check_attention_math(model, path)
    model.to(device).eval()
    cfg = model.config
    info = model_info(path, name, revision, cfg.num_hidden_layers, cfg.num_attention_heads,
                      cfg.hidden_size, cfg.vocab_size,
                      context_length(path, cfg.max_position_embeddings), dtype, device)
    backend = HFBackend(model, tokenizer, info, dtype, device)
    if self_test:
        self_test_backend(backend)
    return backend


@torch.inference_mode()
def self_test_backend(backend: HFBackend, n_tokens: int = 12, seed: int = 0) -> float:
    """One cached decode step against a full forward pass, with a key-mass tap that every
    layer must deliver exactly once (else the model bypasses ATTENTION_NAME). Returns
    max |logit difference|; a few milliseconds on any model."""
    generator = torch.Generator().manual_seed(seed)
    n_tokens = min(n_tokens, backend.info.n_ctx)
    ids = torch.randint(0, backend.info.d_vocab, (1, n_tokens), generator=generator)
    embeds = backend.embedding_table[ids.to(backend.device)]
    mask = torch.ones(1, n_tokens, dtype=torch.long, device=backend.device)
    positions = torch.arange(n_tokens, device=backend.device)[None]
    calls: list[int] = []
    tap = Tap(ATTN_KEY_MASS, tuple(range(backend.info.n_layers)),
              lambda layer, mass: calls.append(layer), key_mask=mask[:, :-1].float())
    with backend.tapped([tap]):
        _, cache = backend.prefill(embeds[:, :-1], mask[:, :-1], positions[:, :-1])
        cached, _ = backend.decode(ids[:, -1:].to(backend.device), mask, positions[:, -1:], cache)
    if sorted(calls) != sorted(2 * list(range(backend.info.n_layers))):
        raise UnsupportedModelError(
            f"{backend.info.name}: its attention does not go through transformers' attention "
            "registry, so the hf backend cannot probe it; use --backend transformer-lens")
    full = backend.forward(embeds)[0, -1].float()
    diff = (cached[0].float() - full).abs().max().item()
    tolerance = 1e-3 if backend.dtype == torch.float32 else 0.05 * (1 + full.abs().max().item())
    if not diff < tolerance:
        raise KVCacheSelfTestError(
            f"KV-cache self-test failed for {backend.info.name} (hf backend): a cached decode "
            f"step differs from a full forward pass by {diff:.3g} (tolerance {tolerance:.3g})")
    return diff
