"""The TransformerLens backend: the ONLY module that imports transformer_lens or names its
hook points.

It boots a TransformerBridge around the Hugging Face model and refuses to return a model
whose cached decoding disagrees with a full forward pass (transformers 5.24 silently breaks
the KV cache of TransformerLens 4.3; see shared/notes/transformer-lens.md). Sites are
delivered through hook points: attention pattern and key mass from `hook_pattern`, scores
from `hook_attn_scores`, residuals from `hook_resid_post`.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

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
    no_hf_progress_bars,
)
from rsp_probe.errors import KVCacheSelfTestError, UsageError

NAME = "transformer-lens"
_HOOK_POINTS = {
    ATTN_PATTERN: "blocks.{layer}.attn.hook_pattern",
    ATTN_KEY_MASS: "blocks.{layer}.attn.hook_pattern",
    ATTN_SCORES: "blocks.{layer}.attn.hook_attn_scores",
    RESID_POST: "blocks.{layer}.hook_resid_post",
}


class TransformerLensBackend:
    """A TransformerBridge behind the Backend protocol; `bridge` stays reachable for tests
    that compare against TransformerLens itself."""

    name = NAME

    def __init__(self, bridge, tokenizer, info: ModelInfo, dtype: torch.dtype,
                 device: torch.device):
        self.bridge = bridge  # transformer_lens.model_bridge.TransformerBridge
        self.tokenizer = tokenizer  # our own copy: the bridge may reconfigure the one it holds
        self.info = info
        self.dtype = dtype
        self.device = device
        self.embed_scale = 1.0  # set by load: see embedding_scale
        self._scaled_table: torch.Tensor | None = None

    @property
    def embedding_table(self) -> torch.Tensor:
        """[d_vocab, d_model]: what the first block sees for each token, W_E times
        `embed_scale` (Gemma's sqrt(d_model) normalizer, which the bridge applies to token
        ids but not to an embeds input)."""
        if self.embed_scale == 1.0:
            return self.bridge.W_E
        if self._scaled_table is None:
            self._scaled_table = self.bridge.W_E.detach() * self.embed_scale
        return self._scaled_table

    @property
    def eos_token_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id}
        gen = getattr(self.bridge.original_model, "generation_config", None)
        extra = getattr(gen, "eos_token_id", None)
        ids |= set(extra) if isinstance(extra, (list, tuple)) else {extra}
        return {i for i in ids if i is not None}

    def supports(self, feature: str) -> bool:
        return feature in FEATURES

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.bridge.original_model.parameters())

    def prefill(self, embeds: torch.Tensor, attention_mask: torch.Tensor,
                position_ids: torch.Tensor) -> tuple[torch.Tensor, Any]:
        return self._step(embeds, attention_mask, position_ids, None)

    def decode(self, token_ids: torch.Tensor, attention_mask: torch.Tensor,
               position_ids: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        return self._step(token_ids, attention_mask, position_ids, cache)

    def _step(self, inputs, attention_mask, position_ids, cache):
        logits, cache = self.bridge(inputs, return_type="logits_and_cache",
                                    past_key_values=cache, attention_mask=attention_mask,
                                    position_ids=position_ids)
        return logits[:, -1], cache

    def rewind(self, cache: Any, n_positions: int) -> Any:
        cache.crop(-n_positions)  # transformers' Cache: a negative count drops positions
        return cache

    def forward(self, embeds: torch.Tensor) -> torch.Tensor:
        return self.bridge(embeds, return_type="logits")

    @contextlib.contextmanager
    def tapped(self, taps: Sequence[Tap]) -> Iterator[None]:
        check_taps(self, taps)
        hooks = [(_HOOK_POINTS[tap.site].format(layer=layer), _hook(tap, layer))
                 for tap in taps for layer in tap.layers]
        with self.bridge.hooks(fwd_hooks=hooks):  # removes exactly these hooks on exit
            yield


def _hook(tap: Tap, layer: int):
    """A TransformerLens hook delivering `tap`'s site at `layer`."""
    if tap.site != ATTN_KEY_MASS:
        def deliver(value: torch.Tensor, hook=None):
            return tap.fn(layer, value)

        return deliver
    mask = tap.key_mask.float()  # [B, K0]
    n_keys = mask.shape[1]

    def key_mass(pattern: torch.Tensor, hook=None) -> None:  # pattern [B, H, Q, K]
        if pattern.shape[-1] < n_keys:  # a sliding-window cache kept only the newest keys
            raise UsageError(f"layer {layer}: the sliding-window cache holds {pattern.shape[-1]}"
                             f" keys, fewer than the {n_keys} input positions the probe "
                             "reads; the transformer-lens backend cannot probe beyond the "
                             "window (keep prompts shorter than the model's sliding_window)")
        rows = pattern[:, :, -1:] if tap.newest_only else pattern
        tap.fn(layer, torch.einsum("bhqk,bk->bhq", rows[..., :n_keys].float(), mask))

    return key_mass


def load(path: Path, name: str, revision: str | None, dtype: torch.dtype,
         device: torch.device, self_test: bool = True, trust_remote_code: bool = False
         ) -> TransformerLensBackend:
    """Boot a TransformerBridge from a local checkpoint directory (rsp_probe.models.load_model
    resolves it)."""
    _refuse_soft_capping(path)
    tokenizer = load_tokenizer(path, trust_remote_code)
    bridge = _boot_bridge(path, tokenizer, dtype, device, trust_remote_code)
    bridge.eval()
    cfg = bridge.cfg
    info = model_info(path, name, revision, cfg.n_layers, cfg.n_heads, cfg.d_model,
                      cfg.d_vocab, context_length(path, cfg.n_ctx), dtype, device)
    backend = TransformerLensBackend(bridge, tokenizer, info, dtype, device)
    backend.embed_scale = embedding_scale(backend)
    if self_test:
        kv_cache_self_test(backend)
    return backend


def _refuse_soft_capping(path: Path) -> None:
    """Gemma 2 soft-caps its attention scores; on a tiny Gemma 2 the bridge's greedy tokens
    matched transformers' but its next-token entropies differed by up to 2x (tests/
    test_architectures.py), so its probes would be wrong."""
    import json

    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    if config.get("text_config", config).get("attn_logit_softcapping"):
        raise UsageError(f"{path}: soft-capped attention scores (attn_logit_softcapping, "
                         "Gemma 2) give wrong probes on the TransformerLens bridge; use "
                         "--backend hf")


def _boot_bridge(path: Path, tokenizer, dtype: torch.dtype, device: torch.device,
                 trust_remote_code: bool = False):
    from transformer_lens.model_bridge import TransformerBridge

    try:
        with no_hf_progress_bars():  # stderr is for the one-line error, not "Loading weights"
            return TransformerBridge.boot_transformers(
                str(path), tokenizer=copy.deepcopy(tokenizer), dtype=dtype, device=str(device),
                trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as err:
        raise UsageError(f"{path}: cannot be loaded as a TransformerBridge model ({err})") from err




@torch.inference_mode()
def embedding_scale(model: TransformerLensBackend, n_tokens: int = 8) -> float:
    """The factor on W_E rows that makes an embeds input give a token input's logits: 1, or
    sqrt(d_model) for models that scale token embeddings inside forward (Gemma, Gemma 2)."""
    bridge = model.bridge
    ids = torch.arange(min(n_tokens, model.info.n_ctx), device=model.device)[None]
    ids = ids % model.info.d_vocab
    reference = bridge(ids, return_type="logits")[0, -1].float()
    tolerance = _tolerance(model.dtype, reference)
    for scale in (1.0, model.info.d_model ** 0.5):
        got = bridge(bridge.W_E[ids] * scale, return_type="logits")[0, -1].float()
        if (got - reference).abs().max().item() < tolerance:
            return scale
    raise UsageError(f"{model.info.name}: embeds input disagrees with token input on the "
                     "transformer-lens backend (unknown embedding scale); try --backend hf")


def _tolerance(dtype: torch.dtype, reference: torch.Tensor) -> float:
    return 1e-3 if dtype == torch.float32 else 0.05 * (1 + reference.abs().max().item())


@torch.inference_mode()
def kv_cache_self_test(model: TransformerLensBackend, n_tokens: int = 12, seed: int = 0) -> float:
    """Compare one cached decode step with a full forward pass; refuse on disagreement.

    Returns max |logit difference|. A broken cache (decode steps attending only to
    themselves) changes the logits by O(their scale), far above the tolerance.
    """
    bridge = model.bridge
    generator = torch.Generator().manual_seed(seed)
    n_tokens = min(n_tokens, model.info.n_ctx)
    ids = torch.randint(0, model.info.d_vocab, (1, n_tokens), generator=generator)
    ids = ids.to(model.device)
    _, cache = bridge(ids[:, :-1], return_type="logits_and_cache")
    cached = bridge(ids[:, -1:], return_type="logits_and_cache", past_key_values=cache)[0]
    full = bridge(ids, return_type="logits")
    cached_last, full_last = cached[0, -1].float(), full[0, -1].float()
    diff = (cached_last - full_last).abs().max().item()
    tolerance = _tolerance(model.dtype, full_last)
    if not diff < tolerance:
        raise KVCacheSelfTestError(
            f"KV-cache self-test failed for {model.info.name}: a cached decode step differs "
            f"from a full forward pass by {diff:.3g} (tolerance {tolerance:.3g}); refusing to "
            "measure with a broken cache (is transformers 5.24.0 installed? see constraints.txt)")
    return diff
