"""RSP draws and their placement into a model's input embeddings.

An RSP is k vectors drawn from a law (by default an isotropic Gaussian fitted to the entrywise
mean and variance of the input-embedding table), freshly for every trajectory. Each draw is
seeded from (run seed, prompt id, sample index), so it never depends on batch size or order.
The laws themselves are classes in rsp_probe.laws, found by name in rsp_probe.registry.LAWS;
`fit_law` and `draw_rsp` are their public entry points.
"""

from __future__ import annotations

import hashlib

import torch

from rsp_probe.errors import UsageError
from rsp_probe.laws.base import Law
from rsp_probe.registry import LAWS
from rsp_probe.tasks.prompts import EncodedPrompt


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts; stable across processes and Python versions."""
    text = "/".join(str(part) for part in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def fit_law(table: torch.Tensor, kind: str = "gaussian", sigma_scale: float = 1.0,
            special_ids: set[int] | None = None, n_real_tokens: int | None = None,
            prompt: torch.Tensor | None = None) -> Law:
    """The registered law `kind` (a --law value) fitted to an input-embedding table
    [d_vocab, d_model]; `sigma_scale` multiplies its sigma.

    gaussian: scalar mu and sigma^2 over all entries (the paper's law); per-dim,
    tokens and the controls: rsp_probe.laws.gaussian and .controls; trained, trained+noise,
    trained-fit read a trained soft prompt `prompt` [k, d_model] (rsp_probe.laws.trained).
    `special_ids` and `n_real_tokens` tell the tokens law which rows are real tokens.
    """
    if kind not in LAWS:
        raise UsageError(f"unknown --law {kind!r}; registered: {', '.join(LAWS.names())}")
    return LAWS.get(kind).fit(table, sigma_scale, special_ids=special_ids,
                              n_real_tokens=n_real_tokens, prompt=prompt)


def draw_rsp(law: Law, k: int, seed: int) -> torch.Tensor:
    """k vectors [k, d_model] (float32) from the law, determined by `seed` alone. For a
    slotless law (law.slots False: neftune) k is the number of input positions the draw is
    added to."""
    return law.draw(k, seed)


def trajectory_draw_seed(run_seed: int, prompt_id: str, sample: int, fixed: bool) -> int:
    """The seed of one trajectory's RSP draw; a fixed draw ignores prompt and sample."""
    if fixed:
        return derive_seed(run_seed, "rsp", "fixed")
    return derive_seed(run_seed, "rsp", prompt_id, sample)


def place_rsp(prompt: EncodedPrompt, k: int, placement: str) -> tuple[list[int], list[int]]:
    """Token ids of the model input with -1 where RSP vectors go, and those positions.

    suffix: BOS/head, question, RSP, answer cue; prefix: BOS/head, RSP, question, cue.
    """
    slots = [-1] * k
    if placement == "suffix":
        ids = prompt.head + prompt.question + slots + prompt.cue
        start = len(prompt.head) + len(prompt.question)
    elif placement == "prefix":
        ids = prompt.head + slots + prompt.question + prompt.cue
        start = len(prompt.head)
    else:
        raise UsageError(f"unknown --placement {placement!r}; expected suffix or prefix")
    return ids, list(range(start, start + k))


def build_inputs_embeds(table: torch.Tensor, ids_with_slots: list[int],
                        rsp_positions: list[int], rsp: torch.Tensor) -> torch.Tensor:
    """Embed tokens with the model's own table and write the RSP rows into their slots.

    Returns [T, d_model] in the table's dtype (a bf16 model rejects fp32 embeds).
    """
    ids = torch.tensor([max(i, 0) for i in ids_with_slots], device=table.device)
    embeds = table[ids].clone()  # [T, d_model]
    if rsp_positions:
        embeds[rsp_positions] = rsp.to(table.device, table.dtype)
    return embeds


def job_embeds(table: torch.Tensor, job) -> torch.Tensor:
    """A sampler Job's input embeddings [T, d_model]: its tokens, its RSP vectors in their
    slots, and, for a slotless law (job.rsp_added, from `not law.slots`: neftune), its draw
    added to every input position."""
    embeds = build_inputs_embeds(table, job.input_ids, job.rsp_positions, job.rsp)
    if job.rsp_added:
        embeds += job.rsp.to(table.device, table.dtype)
    return embeds
