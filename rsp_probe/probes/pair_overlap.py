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
import pandas as pd
import torch

from rsp_probe.analysis.divergence import trajectory_pairs
from rsp_probe.backends.base import Backend
from rsp_probe.probes.influence import teacher_forced
from rsp_probe.rsp import build_inputs_embeds
from rsp_probe.sampler import _top_p_filter

COLUMNS = ("prompt_id", "condition", "a", "b", "step", "overlap")


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


def pair_overlap_table(model: Backend, trajectories: pd.DataFrame,
                       vectors: dict[str, np.ndarray], top_p: float = 1.0) -> pd.DataFrame:
    """sum_v p_a p_b per pair of trajectories of each (prompt, sampled condition) at every
    step 1..together (the pair's last shared step); greedy conditions are left out."""
    rows = []
    sampled = trajectories[trajectories["temperature"].fillna(0) > 0]
    records = sampled.set_index("id", drop=False).to_dict("index")
    for condition, traj in sampled.groupby("condition", sort=True):
        pairs = trajectory_pairs(traj)
        need: dict[str, int] = {}
        for pair in pairs:
            for member in (pair.a, pair.b):
                need[member] = max(need.get(member, 0), pair.together)
        probs = {tid: sampling_distributions(model, records[tid], vectors[tid], steps, top_p)
                 for tid, steps in need.items() if steps > 0}
        for pair in pairs:
            last = pair.together
            overlap = (probs[pair.a][:last] * probs[pair.b][:last]).sum(-1).cpu().numpy()
            rows.append(pd.DataFrame({"prompt_id": pair.prompt_id, "condition": condition,
                                      "a": pair.a, "b": pair.b,
                                      "step": np.arange(1, last + 1), "overlap": overlap}))
    if not rows:
        return pd.DataFrame({column: [] for column in COLUMNS})
    return pd.concat(rows, ignore_index=True)[list(COLUMNS)]


def pair_overlap_files(session) -> dict:
    """The branching experiment's model-side derived file, from the staged run."""
    from rsp_probe.controls import BLOCKED_LAWS, SLOTLESS_LAWS
    from rsp_probe.runs import PAIR_OVERLAP_FILE

    if session.spec.rsp.law in BLOCKED_LAWS + SLOTLESS_LAWS:
        return {}  # no RSP slots to teacher-force through: the bound is all there is
    run = session.writer.staged_run()
    return {PAIR_OVERLAP_FILE: pair_overlap_table(session.model, run.trajectories,
                                                  run.rsp_vectors(),
                                                  float(session.spec.sampling.top_p))}
