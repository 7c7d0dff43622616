"""What the hf backend needs to know about a transformers model's structure, found through
the model itself: its decoder layers, its effective input-embedding table, and the features
the tapped attention does not compute (refused with UnsupportedModelError, on which
`--backend auto` falls back to TransformerLens)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from rsp_probe.errors import UsageError

# Where a decoder keeps its block list (Llama/Qwen/Mistral/Gemma/Phi-3/OLMo/NeoX: layers;
# GPT-2/GPT-J/Falcon: h; MPT: blocks; T5-style: block); checked against num_hidden_layers.
_LAYER_ATTRIBUTES = ("layers", "h", "blocks", "block")


class UnsupportedModelError(UsageError):
    """The model's structure or attention is one this backend cannot run faithfully; the
    TransformerLens backend can (`--backend auto` falls back to it on this error only)."""


def check_supported(path: Path) -> None:
    """Refuse, before loading, what the tapped attention would compute differently: scores
    soft-capped by tanh (Gemma 2) are not what sdpa or the taps compute."""
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    config = config.get("text_config", config)
    if config.get("attn_logit_softcapping"):
        raise UnsupportedModelError(
            f"{path}: its attention scores are soft-capped (attn_logit_softcapping), which "
            "the hf backend does not compute; use --backend transformer-lens")


def decoder_layers(model) -> torch.nn.ModuleList:
    """The decoder blocks, found through the model's own decoder (get_decoder / base_model),
    never by assuming `model.model.layers`."""
    decoder = model.get_decoder() if callable(getattr(model, "get_decoder", None)) else None
    n_layers = model.config.num_hidden_layers
    for owner in (decoder, model.base_model):
        for attribute in _LAYER_ATTRIBUTES:
            layers = getattr(owner, attribute, None)
            if isinstance(layers, torch.nn.ModuleList) and len(layers) == n_layers:
                return layers
    raise UnsupportedModelError(
        f"{type(model).__name__}: no list of {n_layers} decoder layers under its decoder "
        f"(looked for {', '.join(_LAYER_ATTRIBUTES)}), so the hf backend cannot tap it; "
        "use --backend transformer-lens")


def input_embedding_table(model) -> torch.Tensor:
    """[d_vocab, d_model]: the embedding weight times the module's `embed_scale` when it has
    one (Gemma multiplies by sqrt(d_model) in forward; inputs_embeds must carry that too)."""
    module = model.get_input_embeddings()
    scale = getattr(module, "embed_scale", None)
    if scale is None:
        return module.weight
    return module.weight.detach() * torch.as_tensor(scale).to(module.weight.dtype)
