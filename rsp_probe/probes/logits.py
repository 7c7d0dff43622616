"""Probes on the next-token logits: entropy, top-1 probability, margin, and the collision
probability of the tempered sampling distribution.

Both probes read the same step's logits; the untempered distribution is computed once per
step (`step_distribution`) and shared, and a batch of greedy rows computes no collision at
all (it is 1 by definition), so the probes add a few passes over [B, V] per step."""

from __future__ import annotations

import weakref

import torch

from rsp_probe.probes.base import BatchContext, BufferedProbe
from rsp_probe.probes.names import COLLISION_PROBE, LOGIT_PROBES

# [(weakref to the logits, their version, log_probs, probs)] of the latest call; emptied
# when those logits are freed, so a finished step holds no [B, V] tensors here
_latest: list[tuple] = []


def step_distribution(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log_softmax, softmax) of next-token logits [B, V] in float32. The result for the
    latest logits tensor is remembered while that tensor lives, so the probes of one step
    share one log_softmax: until the tensor is modified in place where torch counts that;
    the sampler's logits are inference tensors (no count), which nothing modifies."""
    version = _version(logits)
    if _latest and _latest[0][0]() is logits and _latest[0][1] == version:
        return _latest[0][2], _latest[0][3]
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    # a masked (-inf) logit's log-probability becomes the lowest finite float, so that
    # p log p there is 0 x finite = 0 and the entropy is one multiply-and-sum (xlogy,
    # which handles 0 log 0 itself, takes three times as long at a 152k vocabulary)
    log_probs.clamp_(min=torch.finfo(log_probs.dtype).min)
    probs = log_probs.exp()
    # the callback comes only while its weakref lives, i.e. while this entry is the latest
    _latest[:] = [(weakref.ref(logits, lambda _: _latest.clear()), version, log_probs, probs)]
    return log_probs, probs


def _version(tensor: torch.Tensor) -> int | None:
    return None if tensor.is_inference() else tensor._version


def logit_probes(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """entropy (nats, of the untempered softmax), top1_prob and margin (top-1 minus top-2
    logit) of next-token logits [B, V]; each value [B], float32."""
    log_probs, probs = step_distribution(logits)
    entropy = -(probs * log_probs).sum(dim=-1)
    top2 = logits.topk(2, dim=-1)  # in the logits' dtype: widening to float32 is exact
    values = top2.values.float()
    return {"entropy": entropy, "top1_prob": probs.gather(-1, top2.indices[:, :1])[:, 0],
            "margin": values[:, 0] - values[:, 1]}


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
        self.values[COLLISION_PROBE].fill_(1.0)  # a greedy row's value, at every step
        # decided once per batch, so that a step needs no host synchronisation
        self.tempered = bool((self.temperature > 0).any())
        self.untempered = bool((self.temperature == 1).all())

    def record(self, step: int, logits: torch.Tensor) -> None:
        if not self.tempered:
            return
        if self.untempered:  # tau = 1 everywhere: the logit probes' softmax is p_tau
            collision = step_distribution(logits)[1].pow(2).sum(dim=-1)
        else:
            collision = collision_probability(logits, self.temperature)
        self.values[COLLISION_PROBE][:, step - 1] = collision
