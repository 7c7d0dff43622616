"""Control laws: what is left of an RSP when one of its parts is taken away (`--law`).

    mean            k copies of the Gaussian law's mean vector (mu in every dimension): the
                    same positions and a typical location, no randomness
    pc-in, pc-out   a random direction inside (outside) the span of the embedding table's top
                    PC_FRACTION of principal components, scaled to the norm of the Gaussian
                    draw from the same seed (norm-matched)
    positions-only  the Gaussian draw in its k slots, but no query may attend to those keys
                    (a knockout from step 1): only the position shift of later tokens remains
    neftune         no slots at all: uniform noise in [-1, 1] * alpha / sqrt(L d) added to
                    the L input embeddings (NEFTune, arXiv 2310.05914), alpha =
                    NEFTUNE_ALPHA * --sigma-scale

Every control's vectors are saved in rsp.safetensors under the trajectory id like an RSP:
[k, d_model] for the slot controls, [L, d_model] (the noise added to each input position)
for neftune.
"""

from __future__ import annotations

import torch

CONTROL_LAWS = ("mean", "pc-in", "pc-out", "positions-only", "neftune")
SLOTLESS_LAWS = ("neftune",)  # no RSP positions; the draw is added to the prompt
BLOCKED_LAWS = ("positions-only",)  # the RSP keys are knocked out from step 1
PC_FRACTION = 0.25  # the top quarter of the principal components spans "inside"
NEFTUNE_ALPHA = 5.0  # NEFTune's most used alpha


def principal_basis(table: torch.Tensor, fraction: float = PC_FRACTION,
                    rows_per_chunk: int = 8192) -> torch.Tensor:
    """Orthonormal [d_model, P] basis of the top P = max(1, round(fraction d)) principal
    components of the table's rows (float64, CPU), from the d x d covariance in chunks."""
    d_model = table.shape[1]
    total = torch.zeros(d_model, dtype=torch.float64)
    second = torch.zeros(d_model, d_model, dtype=torch.float64)
    for start in range(0, table.shape[0], rows_per_chunk):
        chunk = table[start:start + rows_per_chunk].detach().to("cpu", torch.float64)
        total += chunk.sum(0)
        second += chunk.T @ chunk
    mean = total / table.shape[0]
    covariance = second / table.shape[0] - torch.outer(mean, mean)
    _, vectors = torch.linalg.eigh(covariance)  # ascending eigenvalues
    n_top = max(1, round(fraction * d_model))
    return vectors[:, -n_top:]


def norm_matched_direction(basis: torch.Tensor, inside: bool, reference: torch.Tensor,
                           generator: torch.Generator) -> torch.Tensor:
    """[k, d] random directions in (or orthogonal to) span(basis), each with the norm of the
    matching row of `reference` [k, d]."""
    noise = torch.randn(reference.shape, generator=generator, dtype=torch.float64)
    projected = noise @ basis @ basis.T
    direction = projected if inside else noise - projected
    direction = direction / direction.norm(dim=1, keepdim=True)
    return (direction * reference.double().norm(dim=1, keepdim=True)).float()


def prompt_noise(n_input: int, d_model: int, alpha: float, seed: int) -> torch.Tensor:
    """NEFTune noise [n_input, d_model]: uniform in [-1, 1] times alpha / sqrt(L d)."""
    generator = torch.Generator().manual_seed(seed)
    uniform = torch.rand(n_input, d_model, generator=generator, dtype=torch.float64) * 2 - 1
    return (uniform * alpha / (n_input * d_model) ** 0.5).float()
