"""The RSP law, its draws, and their placement into a model's input embeddings.

An RSP is k vectors drawn i.i.d. from an isotropic Gaussian fitted to the entrywise mean and
variance of the input-embedding table, freshly for every trajectory. Each draw is seeded from
(run seed, prompt id, sample index), so it never depends on batch size or order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from rsp_probe.controls import (
    CONTROL_LAWS,
    NEFTUNE_ALPHA,
    norm_matched_direction,
    principal_basis,
)
from rsp_probe.errors import UsageError
from rsp_probe.soft_prompts import TRAINED_LAWS
from rsp_probe.tasks.prompts import EncodedPrompt


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts; stable across processes and Python versions."""
    text = "/".join(str(part) for part in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


@dataclass(frozen=True)
class RSPLaw:
    """Where RSP vectors come from. Tensors are float64 on the CPU, for exact moments."""

    kind: str  # "gaussian" | "per-dim" | "tokens"
    mean: torch.Tensor  # [] for gaussian, [d_model] for per-dim, unused for tokens
    std: torch.Tensor  # [] (sigma, already multiplied by sigma_scale)
    d_model: int
    token_pool: torch.Tensor | None = None  # real token ids the "tokens" control draws from
    table: torch.Tensor | None = None  # the embedding table, for the "tokens" control
    basis: torch.Tensor | None = None  # [d_model, P] top principal components (pc controls)
    alpha: float = 0.0  # NEFTune's alpha (neftune control)
    prompt: torch.Tensor | None = None  # [k, d_model] trained vectors (rsp_probe.soft_prompts)

    def describe(self) -> dict:
        """JSON-ready summary for config.json and notebooks."""
        summary = {"law": self.kind, "d_model": self.d_model}
        if self.kind == "tokens":
            summary["token_pool_size"] = int(self.token_pool.numel())
        elif self.kind == "neftune":
            summary["alpha"] = self.alpha
        elif self.basis is not None:
            summary["principal_components"] = int(self.basis.shape[1])
        if self.prompt is not None:
            summary["soft_prompt_k"] = int(self.prompt.shape[0])
        if self.kind != "tokens":
            summary["mu"] = float(self.mean.mean())
            summary["sigma"] = float(self.std)
        return summary


def fit_law(table: torch.Tensor, kind: str = "gaussian", sigma_scale: float = 1.0,
            special_ids: set[int] | None = None, n_real_tokens: int | None = None,
            prompt: torch.Tensor | None = None) -> RSPLaw:
    """Fit the RSP law to an input-embedding table [d_vocab, d_model].

    gaussian: scalar mu and sigma^2 over all entries (the paper's law);
    per-dim: per-dimension mean, pooled variance; tokens: real rows of the table;
    trained, trained+noise, trained-fit: a trained soft prompt `prompt` [k, d_model]
    (rsp_probe.soft_prompts).
    """
    table = table.detach()
    if kind in TRAINED_LAWS:
        return _trained_law(table, kind, sigma_scale, prompt)
    d_model = table.shape[1]
    column_mean, column_sq = _column_moments(table)  # [d_model] each, float64
    if kind == "gaussian":
        mean = column_mean.mean()
        std = (column_sq.mean() - mean**2).clamp(min=0).sqrt()
    elif kind == "per-dim":
        mean = column_mean
        std = (column_sq - column_mean**2).clamp(min=0).mean().sqrt()
    elif kind == "tokens":
        n_rows = min(n_real_tokens or table.shape[0], table.shape[0])
        pool = torch.tensor([i for i in range(n_rows) if i not in (special_ids or set())])
        mean = column_mean.mean()
        std = (column_sq.mean() - mean**2).clamp(min=0).sqrt()
        return RSPLaw(kind, mean, std, d_model, token_pool=pool, table=table)
    elif kind in CONTROL_LAWS:
        return _finite(_control_law(table, kind, column_mean, column_sq, sigma_scale),
                       sigma_scale)
    else:
        raise UsageError(f"unknown --law {kind!r}; expected gaussian, per-dim, tokens or one "
                         f"of the controls {', '.join(CONTROL_LAWS)}")
    return _finite(RSPLaw(kind, mean, std * sigma_scale, d_model), sigma_scale)


def _finite(law: RSPLaw, sigma_scale: float) -> RSPLaw:
    """Refuse a law whose draws would not be finite float32 numbers (a huge --sigma-scale):
    the model would only turn them into NaN logits mid-run."""
    moments = torch.stack([law.mean.reshape(-1).abs().max(), law.std.reshape(-1).max()])
    if not bool(torch.isfinite(moments.float() * 8).all()):  # 8 sigma: the largest draws
        raise UsageError(f"--sigma-scale {sigma_scale:g}: the RSP's sigma "
                         f"({float(law.std.reshape(-1).max()):.3g}) does not fit float32")
    return law


def _control_law(table, kind: str, column_mean, column_sq, sigma_scale: float) -> RSPLaw:
    """The Gaussian law's moments plus what the control needs (rsp_probe.controls)."""
    mean = column_mean.mean()
    std = (column_sq.mean() - mean**2).clamp(min=0).sqrt() * sigma_scale
    basis = principal_basis(table) if kind in ("pc-in", "pc-out") else None
    return RSPLaw(kind, mean, std, table.shape[1], basis=basis,
                  alpha=NEFTUNE_ALPHA * sigma_scale)


def _trained_law(table, kind: str, sigma_scale: float, prompt) -> RSPLaw:
    """trained+noise adds the Gaussian law's noise (sigma fitted to the table, times
    sigma_scale); trained-fit draws from the trained vectors' per-dimension mean and pooled
    variance (times sigma_scale)."""
    if prompt is None:
        raise UsageError(f"--law {kind} needs --soft-prompt FILE (from `rsp-probe tune-prompt`)")
    if prompt.shape[1] != table.shape[1]:
        raise UsageError(f"the soft prompt's width {prompt.shape[1]} does not match the model's "
                         f"d_model {table.shape[1]}")
    vectors = prompt.detach().to("cpu", torch.float64)
    if kind == "trained-fit":
        mean = vectors.mean(dim=0)
        std = (vectors - mean).pow(2).mean().sqrt()
    else:
        column_mean, column_sq = _column_moments(table)
        mean = column_mean.mean()
        std = (column_sq.mean() - mean**2).clamp(min=0).sqrt()
    return RSPLaw(kind, mean, std * sigma_scale, table.shape[1], prompt=prompt.float().cpu())


def _column_moments(table: torch.Tensor, rows_per_chunk: int = 8192):
    """Per-column E[x] and E[x^2] in float64, in chunks: a 7B model's table is ~1 GB in bf16."""
    total = torch.zeros(table.shape[1], dtype=torch.float64)
    total_sq = torch.zeros(table.shape[1], dtype=torch.float64)
    for start in range(0, table.shape[0], rows_per_chunk):
        chunk = table[start:start + rows_per_chunk].to("cpu", torch.float64)
        total += chunk.sum(dim=0)
        total_sq += chunk.pow(2).sum(dim=0)
    return total / table.shape[0], total_sq / table.shape[0]


def draw_rsp(law: RSPLaw, k: int, seed: int) -> torch.Tensor:
    """k vectors [k, d_model] (float32) from the law, determined by `seed` alone."""
    generator = torch.Generator().manual_seed(seed)
    if k == 0:
        return torch.zeros(0, law.d_model)
    if law.kind == "tokens":
        picks = torch.randint(0, law.token_pool.numel(), (k,), generator=generator)
        return law.table[law.token_pool[picks].to(law.table.device)].float().cpu()
    if law.kind == "mean":
        return law.mean.expand(k, law.d_model).float().clone()
    if law.kind == "neftune":
        raise ValueError("the neftune control has no slots; use controls.prompt_noise")
    if law.kind in ("trained", "trained+noise") and k != law.prompt.shape[0]:
        raise UsageError(f"the soft prompt has k={law.prompt.shape[0]} vectors, not {k}")
    if law.kind == "trained":
        return law.prompt.clone()
    noise = torch.randn(k, law.d_model, generator=generator, dtype=torch.float64)
    if law.kind == "trained+noise":
        return (law.prompt.double() + law.std * noise).float()
    gaussian = (law.mean + law.std * noise).float()
    if law.kind in ("pc-in", "pc-out"):
        return norm_matched_direction(law.basis, law.kind == "pc-in", gaussian, generator)
    return gaussian


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
    slots, and, for a slotless control (job.rsp_added: neftune), its draw added to every
    input position."""
    embeds = build_inputs_embeds(table, job.input_ids, job.rsp_positions, job.rsp)
    if job.rsp_added:
        embeds += job.rsp.to(table.device, table.dtype)
    return embeds
