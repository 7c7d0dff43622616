"""Teacher-forced influence: how an RSP changes the next-token distribution along a fixed
continuation, separated from the divergence of sampled trajectories.

For a prompt, a continuation c_1..c_S and an RSP draw, step t compares
p_rsp(. | prompt + RSP, c_<t) with p_base(. | prompt, c_<t).
"""

from __future__ import annotations

import torch

from rsp_probe.backends.base import ATTN_KEY_MASS, ATTN_SCORES, Backend, Tap, all_layers
from rsp_probe.interventions.knockout import mask_keys
from rsp_probe.probes.names import ATTENTION_PROBE
from rsp_probe.rsp import build_inputs_embeds, job_embeds


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
                   rsp_positions: list[int], block_rsp: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One full forward over [B, T, d] inputs of equal length; with block_rsp no query
    attends to the RSP keys (the positions-only control: a knockout from step 1).

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
        if block_rsp:
            taps.append(Tap(ATTN_SCORES, all_layers(model),
                            lambda layer, scores: mask_keys(scores, key_mask.bool()),
                            newest_only=False))
    with model.tapped(taps):
        logits = model.forward(embeds)[:, rows]
    if not rsp_positions:
        return logits, None
    attention = torch.stack([masses[layer] for layer in range(model.info.n_layers)], dim=1)
    return logits, attention.permute(0, 3, 1, 2)  # [B, L, H, S] -> [B, S, L, H]


def influence_batch(model: Backend, jobs: list, continuation: list[int],
                    block_rsp: bool = False) -> dict:
    """Draws of one prompt and condition; the base input is replicated to the same batch
    shape, so a k=0 'draw' reproduces the base logits bit for bit. Controls: block_rsp
    knocks the RSP keys out (positions-only); a slotless job's draw is added to its input
    embeddings (neftune, rsp_probe.rsp.job_embeds)."""
    table = model.embedding_table
    forced = torch.tensor(continuation[:-1], dtype=torch.long)
    forced_embeds = table[forced.to(table.device)]
    base_ids = [i for i in jobs[0].input_ids if i >= 0]
    base_embeds = build_inputs_embeds(table, base_ids, [], jobs[0].rsp[:0])
    base_batch = torch.cat([base_embeds, forced_embeds])[None].expand(len(jobs), -1, -1)
    rsp_batch = torch.stack([torch.cat([job_embeds(table, job), forced_embeds])
                             for job in jobs])
    n_steps = len(continuation)
    base_logits, _ = teacher_forced(model, base_batch.contiguous(), len(base_ids) - 1, n_steps, [])
    rsp_logits, attention = teacher_forced(model, rsp_batch, len(jobs[0].input_ids) - 1,
                                           n_steps, jobs[0].rsp_positions, block_rsp)
    values = {name: v.cpu().numpy() for name, v in
              influence_values(base_logits, rsp_logits).items()}
    out = {}
    for row, job in enumerate(jobs):
        out[job.id] = {name: v[row] for name, v in values.items()}
        if attention is not None:
            out[job.id][ATTENTION_PROBE] = attention[row].cpu().numpy()
    return out
