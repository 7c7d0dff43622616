"""Teacher-forced effect of a knockout: KL(p_full || p_knocked) at every step along a fixed
continuation (the full-RSP run's own tokens), from two full forwards over the same input."""

from __future__ import annotations

import numpy as np
import torch

from rsp_probe.backends.base import ATTN_SCORES, Backend, Tap, all_layers
from rsp_probe.interventions.knockout import mask_keys, teacher_forced_tap
from rsp_probe.interventions.spec import PATHS, Knockout
from rsp_probe.probes.influence import influence_values
from rsp_probe.rsp import build_inputs_embeds


@torch.inference_mode()
def knockout_kl(model: Backend, jobs: list, tokens: list[int], knockout: Knockout) -> np.ndarray:
    """[B, S] KL in nats, S = len(tokens); jobs share one input length and layout (draws of
    one prompt). Step t reads the row that predicts token t."""
    table = model.embedding_table
    forced = table[torch.tensor(tokens[:-1], dtype=torch.long, device=table.device)]
    embeds = torch.stack([torch.cat([build_inputs_embeds(table, job.input_ids,
                                                         job.rsp_positions, job.rsp), forced])
                          for job in jobs])
    first = len(jobs[0].input_ids) - 1
    rows = slice(first, first + len(tokens))
    key_mask = torch.zeros(len(jobs), len(jobs[0].input_ids), device=embeds.device)
    key_mask[:, jobs[0].rsp_positions] = 1.0
    full = model.forward(embeds)[:, rows]
    with model.tapped(teacher_forced_tap(knockout, key_mask, first, model.info.n_layers)):
        knocked = model.forward(embeds)[:, rows]
    # influence_values(base, rsp) gives KL(p_rsp || p_base): here p_full against p_knocked
    return influence_values(knocked, full)["kl"].cpu().numpy()


@torch.inference_mode()
def path_kl(model: Backend, job, tokens: list[int], path: str) -> np.ndarray:
    """[S] KL(p_full || p_path) along `tokens`, one forward per step t over the input and
    tokens[:t-1], keeping one path of the RSP's influence on step t's query (last row):

    direct    only the newest query may attend to the RSP keys; every earlier non-RSP
              position is blocked from them, so its residuals are those of the run with
              the RSP knocked out from step 1 (the baseline with the RSP's positions)
    indirect  only the newest query is blocked; earlier positions keep what they read
    """
    if path not in PATHS:
        raise ValueError(f"unknown path {path!r}; expected one of {PATHS}")
    table = model.embedding_table
    base = build_inputs_embeds(table, job.input_ids, job.rsp_positions, job.rsp)
    forced = table[torch.tensor(tokens[:-1], dtype=torch.long, device=table.device)]
    embeds = torch.cat([base, forced])[None]
    first = len(job.input_ids) - 1
    full = model.forward(embeds)[0, first:first + len(tokens)]
    key_mask = torch.zeros(1, len(job.input_ids), dtype=torch.bool, device=embeds.device)
    key_mask[:, job.rsp_positions] = True
    kept = []
    for step in range(1, len(tokens) + 1):
        last = first + step - 1
        rows = torch.zeros(last + 1, dtype=torch.bool)
        if path == "indirect":
            rows[last] = True
        else:
            rows[:last] = True
            rows[job.rsp_positions] = False

        def block(layer: int, scores: torch.Tensor, rows=rows) -> torch.Tensor:
            return mask_keys(scores, key_mask, rows)

        taps = [Tap(ATTN_SCORES, all_layers(model), block, newest_only=False)]
        with model.tapped(taps):
            kept.append(model.forward(embeds[:, :last + 1])[0, last])
    return influence_values(torch.stack(kept), full)["kl"].cpu().numpy()
