"""Probes on the next-token logits: entropy, top-1 probability, margin, and the collision
probability of the tempered sampling distribution."""

from __future__ import annotations

import torch

from rsp_probe.probes.base import BatchContext, BufferedProbe
from rsp_probe.probes.names import COLLISION_PROBE, LOGIT_PROBES


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


class LogitProbe(BufferedProbe):
    """entropy, top1_prob and margin of every step's logits."""

    def __init__(self, context: BatchContext):
        super().__init__(context, LOGIT_PROBES)

    def record(self, step: int, logits: torch.Tensor) -> None:
        for name, values in logit_probes(logits).items():
            self.values[name][:, step - 1] = values


class CollisionProbe(BufferedProbe):
    """The probability that two trajectories sharing this prefix sample the same token."""

    def __init__(self, context: BatchContext):
        super().__init__(context, (COLLISION_PROBE,))
        self.temperature = context.temperature

    def record(self, step: int, logits: torch.Tensor) -> None:
        self.values[COLLISION_PROBE][:, step - 1] = collision_probability(logits,
                                                                          self.temperature)
