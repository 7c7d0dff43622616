"""What the hf backend needs to know about a transformers model's structure, found through
the model itself: its decoder layers and its effective input-embedding table. A structure it
cannot tap raises UnsupportedModelError, on which `--backend auto` falls back to
TransformerLens."""

from __future__ import annotations

import torch

from rsp_probe.errors import UsageError

# Where a decoder keeps its block list (Llama/Qwen/Mistral/Gemma/Phi-3/OLMo/NeoX: layers;
# GPT-2/GPT-J/Falcon: h; MPT: blocks; T5-style: block); checked against num_hidden_layers.
_LAYER_ATTRIBUTES = ("layers", "h", "blocks", "block")


class UnsupportedModelError(UsageError):
    """The model's structure or attention is one this backend cannot run faithfully; the
    TransformerLens backend can (`--backend auto` falls back to it on this error only)."""


def check_attention_math(model, path) -> None:
    """The tapped attention computes sdpa's softmax(q k^T * scaling + mask) v, with Gemma 2's
    soft-capped scores (`softcap`) when the config asks for them. A model class that declares
    it cannot run on sdpa for another reason is refused (transformers would run it with
    eager attention only)."""
    config = model.config.get_text_config()
    if getattr(model, "_supports_sdpa", True) or getattr(config, "attn_logit_softcapping", None):
        return
    raise UnsupportedModelError(f"{path}: transformers runs this model with eager attention "
                                "only; use --backend transformer-lens")


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
