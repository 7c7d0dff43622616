"""The math of the control laws (rsp_probe.laws.controls declares them, `--law mean | pc-in |
pc-out | positions-only | neftune`): the embedding table's top principal components, the
norm-matched directions inside or outside their span, and NEFTune's prompt noise.
"""

from __future__ import annotations

import torch

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
    """NEFTune noise [n_input, d_model] from `seed`."""
    return neftune_noise(n_input, d_model, alpha, torch.Generator().manual_seed(seed))


def neftune_noise(n_input: int, d_model: int, alpha: float,
                  generator: torch.Generator) -> torch.Tensor:
    """NEFTune noise [n_input > 0, d_model]: uniform in [-1, 1] times alpha / sqrt(L d)."""
    uniform = torch.rand(n_input, d_model, generator=generator, dtype=torch.float64) * 2 - 1
    return (uniform * alpha / (n_input * d_model) ** 0.5).float()
