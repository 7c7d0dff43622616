"""The exact collision probability of two sampled trajectories along their shared prefix.

Two trajectories of one prompt (different RSP draws) that agree on tokens 1..t-1 sample token
t from their own distributions p_a and p_b; they agree there with probability
sum_v p_a(v) p_b(v). The collision probes store only sum_v p(v)^2 per trajectory, whose
geometric mean bounds that sum from above and says nothing specific to RSPs, so this derived
measurement teacher-forces each trajectory on its own tokens (its RSP in place), takes its
sampling distribution at every step up to the last one it shares with another trajectory,
and writes sum_v p_a p_b per pair and shared step (PAIR_OVERLAP_FILE). At steps up to the
first divergence both distributions condition on the same prefix, so these are exactly the
distributions the sampler drew from (up to the forward pass's float rounding).
"""

from __future__ import annotations

import numpy as np
import torch

from rsp_probe.backends.base import Backend
from rsp_probe.probes.influence import teacher_forced
from rsp_probe.rsp import build_inputs_embeds
from rsp_probe.sampler import _top_p_filter


def input_ids_with_slots(record: dict) -> list[int]:
    """The model input of a trajectory: its prompt ids with -1 at the RSP positions."""
    ids = list(record["prompt_token_ids"])
    positions = list(record["rsp_positions"])
    if positions and positions != list(range(positions[0], positions[0] + len(positions))):
        raise ValueError(f"{record['id']}: RSP positions are not one contiguous block")
    start = positions[0] if positions else len(ids)
    return ids[:start] + [-1] * len(positions) + ids[start:]


@torch.inference_mode()
def sampling_distributions(model: Backend, record: dict, rsp: np.ndarray, n_steps: int,
                           top_p: float = 1.0) -> torch.Tensor:
    """[n_steps, V] float64 distribution the sampler drew step 1..n_steps of this trajectory
    from: softmax(logits / temperature), top-p filtered, teacher-forced on its own tokens."""
    table = model.embedding_table
    ids = input_ids_with_slots(record)
    vectors = torch.as_tensor(rsp, dtype=table.dtype)
    prompt = build_inputs_embeds(table, ids, list(record["rsp_positions"]), vectors)
    forced = torch.tensor(record["generated_token_ids"][:n_steps - 1], dtype=torch.long,
                          device=table.device)
    embeds = torch.cat([prompt, table[forced]])[None]
    logits, _ = teacher_forced(model, embeds, len(ids) - 1, n_steps, [])
    probs = torch.softmax(logits[0].float() / float(record["temperature"]), dim=-1)
    probs = _top_p_filter(probs, torch.full((n_steps, 1), top_p, device=probs.device))
    return (probs / probs.sum(dim=-1, keepdim=True)).double()


def pair_overlaps(model: Backend, records: dict[str, dict], vectors: dict[str, np.ndarray],
                  pairs: list[tuple[str, str, int]], top_p: float = 1.0) -> list[np.ndarray]:
    """For each pair (a, b, together) of trajectory ids: sum_v p_a p_b at steps 1..together
    (the pair's last shared step), float64. `records`: trajectory id -> its record
    (prompt_token_ids, rsp_positions, generated_token_ids, temperature > 0)."""
    need: dict[str, int] = {}
    for a, b, together in pairs:
        for member in (a, b):
            need[member] = max(need.get(member, 0), together)
    probs = {tid: sampling_distributions(model, records[tid], vectors[tid], steps, top_p)
             for tid, steps in need.items() if steps > 0}
    return [(probs[a][:together] * probs[b][:together]).sum(-1).cpu().numpy()
            for a, b, together in pairs]
