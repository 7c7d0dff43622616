"""The score-shift dose: add beta to the RSP keys' scores (every layer) in the query row of
one step, teacher-forced, so the RSP mass m moves while the value vectors stay fixed; the
theory predicts KL(p_beta || p_blocked) ~ m^2 within a (prompt, step) cell."""

from __future__ import annotations

import numpy as np
import torch

from rsp_probe.backends.base import ATTN_KEY_MASS, ATTN_SCORES, Backend, Tap, all_layers
from rsp_probe.interventions.knockout import mask_keys
from rsp_probe.probes.influence import influence_values
from rsp_probe.rsp import build_inputs_embeds


@torch.inference_mode()
def score_shift(model: Backend, job, tokens: list[int], step: int,
                betas: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """(m [n_betas], kl [n_betas]): the RSP mass of step `step`'s query averaged over layers
    and heads, and KL(p_beta || p_blocked) at that step, with the RSP keys blocked for
    p_blocked. Needs len(tokens) >= step - 1."""
    table = model.embedding_table
    forced = table[torch.tensor(tokens[:step - 1], dtype=torch.long, device=table.device)]
    embeds = torch.cat([build_inputs_embeds(table, job.input_ids, job.rsp_positions, job.rsp),
                        forced])[None]
    row = len(job.input_ids) - 1 + step - 1
    keys = torch.zeros(1, len(job.input_ids), device=embeds.device)
    keys[:, job.rsp_positions] = 1.0
    blocked = _logits(model, embeds, row, keys, None)[0]
    masses, kls = [], []
    for beta in betas:
        logits, mass = _logits(model, embeds, row, keys, beta)
        masses.append(mass)
        kls.append(float(influence_values(blocked, logits)["kl"]))
    return np.array(masses), np.array(kls)


def _logits(model, embeds, row: int, keys: torch.Tensor, beta: float | None):
    """Logits [V] of `row` with beta added to the RSP keys' scores in that row (None:
    the keys blocked there), and the mean RSP mass of that row over layers and heads."""
    masses = []

    def shift(layer: int, scores: torch.Tensor) -> torch.Tensor:
        rows = torch.zeros(scores.shape[2], dtype=torch.bool)
        rows[row] = True
        if beta is None:
            return mask_keys(scores, keys.bool(), rows)
        bump = torch.zeros_like(scores)
        bump[:, :, row, :keys.shape[1]] = beta * keys[:, None, :]
        return scores + bump

    def read(layer: int, mass: torch.Tensor) -> None:  # [B, H, Q]
        masses.append(float(mass[0, :, row].mean()))

    taps = [Tap(ATTN_SCORES, all_layers(model), shift, newest_only=False),
            Tap(ATTN_KEY_MASS, all_layers(model), read, key_mask=keys, newest_only=False)]
    with model.tapped(taps):
        logits = model.forward(embeds)[0, row]
    return logits, float(np.mean(masses))
