"""The training forward pass: the policy's log-probabilities of its own completions with the
RSP in the same slots, at the same positions, as when they were sampled.

A row is laid out as the sampler lays it out: the prompt (RSP vectors in their slots) left-
padded to the batch's widest prompt, then the completion, right-padded; position ids are
cumsum(mask) - 1, so every real token sits at the position it had during sampling and the
log-probs are those of the distribution the tokens were drawn from (up to float rounding of
the KV-cache path). The RSP vectors are constants; the gradient reaches every weight,
the input embeddings included.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PolicyBatch:
    """Tensors of one batch of rollouts. P is the padded prompt width, L the longest
    completion."""

    token_ids: torch.Tensor  # [B, P + L] long; 0 in RSP slots and padding
    slot_vectors: torch.Tensor  # [B, P + L, D] the RSP vectors in their slots, 0 elsewhere
    in_slot: torch.Tensor  # [B, P + L] bool, True at RSP slots
    attention_mask: torch.Tensor  # [B, P + L] long
    position_ids: torch.Tensor  # [B, P + L] long
    completion_ids: torch.Tensor  # [B, L] long, 0 past each completion's end
    completion_mask: torch.Tensor  # [B, L] float, 1 on completion tokens
    prompt_width: int

    def rows(self, index: slice) -> PolicyBatch:
        return PolicyBatch(self.token_ids[index], self.slot_vectors[index],
                           self.in_slot[index], self.attention_mask[index],
                           self.position_ids[index], self.completion_ids[index],
                           self.completion_mask[index], self.prompt_width)

    def __len__(self) -> int:
        return self.token_ids.shape[0]


def build_batch(inputs: list[list[int]], rsp_positions: list[list[int]],
                rsp: list[torch.Tensor], completions: list[list[int]], d_model: int,
                device) -> PolicyBatch:
    """inputs: model inputs with -1 at the RSP slots (rsp.place_rsp); rsp: [k, D] each."""
    width = max(len(ids) for ids in inputs)
    longest = max(1, max(len(c) for c in completions))
    total = width + longest
    batch = len(inputs)
    token_ids = torch.zeros(batch, total, dtype=torch.long)
    slot_vectors = torch.zeros(batch, total, d_model)
    in_slot = torch.zeros(batch, total, dtype=torch.bool)
    mask = torch.zeros(batch, total, dtype=torch.long)
    completion_ids = torch.zeros(batch, longest, dtype=torch.long)
    completion_mask = torch.zeros(batch, longest)
    for row, (ids, positions, vectors, done) in enumerate(zip(inputs, rsp_positions, rsp,
                                                              completions)):
        pad = width - len(ids)
        token_ids[row, pad:width] = torch.tensor([max(i, 0) for i in ids])
        slots = [pad + p for p in positions]
        slot_vectors[row, slots] = vectors.float()
        in_slot[row, slots] = True
        mask[row, pad:width + len(done)] = 1
        token_ids[row, width:width + len(done)] = torch.tensor(done, dtype=torch.long)
        completion_ids[row, :len(done)] = torch.tensor(done, dtype=torch.long)
        completion_mask[row, :len(done)] = 1.0
    positions = (mask.cumsum(dim=-1) - 1).clamp(min=0)
    return PolicyBatch(token_ids.to(device), slot_vectors.to(device), in_slot.to(device),
                       mask.to(device), positions.to(device), completion_ids.to(device),
                       completion_mask.to(device), width)


def completion_logprobs(model, batch: PolicyBatch, temperature: float
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-probs [B, L] of each completion token, entropy [B, L] in nats) under the
    tempered policy; `model` is a transformers causal LM (HFBackend.model). Differentiable."""
    table = model.get_input_embeddings()
    embeds = table(batch.token_ids)  # [B, T, D]
    embeds = torch.where(batch.in_slot[..., None], batch.slot_vectors.to(embeds.dtype), embeds)
    out = model(inputs_embeds=embeds, attention_mask=batch.attention_mask,
                position_ids=batch.position_ids, use_cache=False)
    start = batch.prompt_width - 1  # the last prompt position predicts completion token 1
    length = batch.completion_ids.shape[1]
    logits = out.logits[:, start:start + length].float()  # [B, L, V]
    log_probs = torch.log_softmax(logits / max(temperature, 1e-6), dim=-1)
    chosen = log_probs.gather(-1, batch.completion_ids[..., None])[..., 0]
    entropy = -(log_probs.exp() * log_probs).sum(dim=-1)
    return chosen, entropy
