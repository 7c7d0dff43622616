"""Teacher-forced effect of a knockout: KL(p_full || p_knocked) at every step along a fixed
continuation (the full-RSP run's own tokens), from two full forwards over the same input."""

from __future__ import annotations

import numpy as np
import torch

from rsp_probe.backends.base import Backend
from rsp_probe.interventions.knockout import teacher_forced_tap
from rsp_probe.interventions.spec import Knockout
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
