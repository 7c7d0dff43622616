"""Read-only step probes: scalars per (trajectory, step[, layer, head]), never full patterns.

Step t (from 1) is the forward pass whose last-position output is the distribution over
generated token t. The sampler owns t; probes only write where it tells them to.
"""

from __future__ import annotations

import torch

from rsp_probe.probes.names import (  # noqa: F401 (re-export)
    ATTENTION_PROBE,
    COLLISION_PROBE,
    LOGIT_PROBES,
)


def logit_probes(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """entropy (nats, of the untempered softmax), top1_prob and margin (top-1 minus top-2
    logit) of next-token logits [B, V]; each value [B], float32."""
    logits = logits.float()
    log_probs = torch.log_softmax(logits, dim=-1)
    probs = log_probs.exp()
    entropy = -torch.special.xlogy(probs, probs).sum(dim=-1)  # 0 log 0 = 0, not nan
    top2 = logits.topk(2, dim=-1).values
    return {"entropy": entropy, "top1_prob": probs.max(dim=-1).values,
            "margin": top2[:, 0] - top2[:, 1]}


def collision_probability(logits: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """sum_v p_tau(v)^2 per row of logits [B, V] at temperatures [B, 1]; 1 where tau = 0."""
    tempered = torch.softmax(logits.float() / temperature.clamp(min=1e-6), dim=-1)
    collision = tempered.pow(2).sum(dim=-1)
    return torch.where(temperature[:, 0] > 0, collision, torch.ones_like(collision))


class RSPAttentionProbe:
    """Per layer and head, the newest query's attention summed over the RSP key positions.

    Buffers live on the model's device ([B, max_steps, n_layers, n_heads]); a forward pass
    must fire every layer's hook exactly once, which `check_step` enforces.
    """

    def __init__(self, rsp_key_mask: torch.Tensor, max_steps: int, n_layers: int, n_heads: int):
        self.rsp_key_mask = rsp_key_mask.float()  # [B, T_prompt], 1 on RSP keys
        batch = rsp_key_mask.shape[0]
        self.values = torch.zeros(batch, max_steps, n_layers, n_heads,
                                  device=rsp_key_mask.device)
        self.n_layers = n_layers
        self.step = 0
        self._calls = [0] * n_layers

    def hooks(self) -> list[tuple[str, object]]:
        return [(f"blocks.{layer}.attn.hook_pattern", self._hook_for(layer))
                for layer in range(self.n_layers)]

    def _hook_for(self, layer: int):
        n_prompt_keys = self.rsp_key_mask.shape[1]

        def hook(pattern: torch.Tensor, hook=None) -> None:  # pattern [B, H, Q, K]
            newest = pattern[:, :, -1, :n_prompt_keys].float()  # [B, H, T_prompt]
            mass = torch.einsum("bhk,bk->bh", newest, self.rsp_key_mask)
            self.values[:, self.step - 1, layer] = mass
            self._calls[layer] += 1

        return hook

    def begin_step(self, step: int) -> None:
        self.step = step
        self._calls = [0] * self.n_layers

    def check_step(self) -> None:
        if any(calls != 1 for calls in self._calls):
            raise RuntimeError(
                f"rsp_attention at step {self.step}: expected one hook call per layer, got "
                f"{self._calls}; the model's attention path is not the one the probe expects")
