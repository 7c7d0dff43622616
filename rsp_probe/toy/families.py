"""One transformers config per decoder family, from the same few ToyArchitecture numbers.

The architecture-coverage tests build a tiny random checkpoint of each family, so every
loading, tapping and decoding path meets the structures users meet: Llama-shaped models
(`model.layers`), GPT-2 (`transformer.h`, learned positions), GPT-NeoX (partial rotary),
Gemma (scaled embeddings, sliding windows, soft-capped scores) and Phi-3 (fused qkv).
"""

from __future__ import annotations

# family -> (config class, model class) names in transformers
FAMILY_CLASSES = {
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM"),
    "llama": ("LlamaConfig", "LlamaForCausalLM"),
    "mistral": ("MistralConfig", "MistralForCausalLM"),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM"),
    "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM"),
    "phi3": ("Phi3Config", "Phi3ForCausalLM"),
    "gpt2": ("GPT2Config", "GPT2LMHeadModel"),
    "gpt_neox": ("GPTNeoXConfig", "GPTNeoXForCausalLM"),
    "olmo2": ("Olmo2Config", "Olmo2ForCausalLM"),
}
# Short enough that a few-token test crosses it (both run on the hf backend).
_SLIDING_WINDOW = {"gemma2": 8, "gemma3": 8}
# Gemma 2's caps, small enough that a tiny random model's scores and logits reach the tanh's
# bend (the defaults, 50 and 30, barely bend them), so a test can tell capped from uncapped.
_GEMMA2_SOFTCAPS = {"attn_logit_softcapping": 2.0, "final_logit_softcapping": 10.0}


def family_options(family: str, arch) -> dict:
    """Config keyword arguments of `family` for `arch` (a ToyArchitecture)."""
    if family == "gpt2":
        return dict(n_embd=arch.d_model, n_layer=arch.n_layers, n_head=arch.n_heads,
                    n_inner=arch.d_mlp, n_positions=arch.n_ctx)
    common = dict(hidden_size=arch.d_model, intermediate_size=arch.d_mlp,
                  num_hidden_layers=arch.n_layers, num_attention_heads=arch.n_heads,
                  max_position_embeddings=arch.n_ctx)
    if family == "gpt_neox":
        return {**common, "rotary_pct": 0.25}
    common["num_key_value_heads"] = arch.n_kv_heads
    head_dim = arch.d_model // arch.n_heads
    if family == "qwen3":
        return {**common, "head_dim": head_dim}
    if family == "mistral":
        return {**common, "sliding_window": None}
    if family in ("gemma2", "gemma3"):
        layer_types = ["sliding_attention", "full_attention"] * (arch.n_layers // 2 + 1)
        caps = _GEMMA2_SOFTCAPS if family == "gemma2" else {}
        return {**common, "head_dim": head_dim, "query_pre_attn_scalar": head_dim,
                "sliding_window": _SLIDING_WINDOW[family],
                "layer_types": layer_types[:arch.n_layers], **caps}
    return common


def family_model(family: str, arch, vocab_size: int, bos_id: int, eos_id: int):
    """A randomly initialised model of `family` (seed torch before calling)."""
    import transformers

    if family not in FAMILY_CLASSES:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILY_CLASSES)}")
    config_name, model_name = FAMILY_CLASSES[family]
    config = getattr(transformers, config_name)(
        vocab_size=vocab_size, initializer_range=arch.initializer_range,
        tie_word_embeddings=True, bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=eos_id,
        **family_options(family, arch))
    return getattr(transformers, model_name)(config)
