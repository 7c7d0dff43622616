"""Teacher-forced influence: how an RSP changes the next-token distribution along a fixed
continuation, separated from the divergence of sampled trajectories.

For a prompt, a continuation c_1..c_S and an RSP draw, step t compares
p_rsp(. | prompt + RSP, c_<t) with p_base(. | prompt, c_<t).
"""

from __future__ import annotations

import torch

from rsp_probe.backends.base import ATTN_KEY_MASS, Backend, Tap, all_layers


def influence_values(base_logits: torch.Tensor,
                     rsp_logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-step influence from logits [..., S, V]; each value [..., S], float64.

    kl = KL(p_rsp || p_base) in nats, tv = total variation, entropy_delta = H(p_rsp) - H(p_base),
    top1_agree = 1 when both argmaxes agree.
    """
    log_base = torch.log_softmax(base_logits.double(), dim=-1)
    log_rsp = torch.log_softmax(rsp_logits.double(), dim=-1)
    p_base, p_rsp = log_base.exp(), log_rsp.exp()
    entropy_base = -torch.special.xlogy(p_base, p_base).sum(-1)
    entropy_rsp = -torch.special.xlogy(p_rsp, p_rsp).sum(-1)
    return {
        "kl": (p_rsp * (log_rsp - log_base)).sum(-1).clamp(min=0.0),
        "tv": 0.5 * (p_rsp - p_base).abs().sum(-1),
        "entropy_delta": entropy_rsp - entropy_base,
        "top1_agree": (base_logits.argmax(-1) == rsp_logits.argmax(-1)).double(),
    }


@torch.inference_mode()
def teacher_forced(model: Backend, embeds: torch.Tensor, first_step_position: int, n_steps: int,
                   rsp_positions: list[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One full forward over [B, T, d] inputs of equal length.

    Returns the logits of steps 1..n_steps, [B, n_steps, V], and, when `rsp_positions` is not
    empty, the attention mass on them per step, layer and head, [B, n_steps, L, H].
    Row `first_step_position` is the last input position: its output predicts step 1.
    """
    rows = slice(first_step_position, first_step_position + n_steps)
    masses: dict[int, torch.Tensor] = {}
    taps = []
    if rsp_positions:
        key_mask = torch.zeros(embeds.shape[0], embeds.shape[1], device=embeds.device)
        key_mask[:, rsp_positions] = 1.0

        def keep(layer: int, mass: torch.Tensor) -> None:  # mass [B, H, Q]
            masses[layer] = mass[:, :, rows]

        taps = [Tap(ATTN_KEY_MASS, all_layers(model), keep, key_mask=key_mask,
                    newest_only=False)]
    with model.tapped(taps):
        logits = model.forward(embeds)[:, rows]
    if not rsp_positions:
        return logits, None
    attention = torch.stack([masses[layer] for layer in range(model.info.n_layers)], dim=1)
    return logits, attention.permute(0, 3, 1, 2)  # [B, L, H, S] -> [B, S, L, H]
