"""The moments a law is fitted from, in float64 on the CPU (exact enough for any table), and
the check that its draws stay finite float32 numbers. Imported by the laws' methods only:
this module imports torch."""

from __future__ import annotations

import torch

from rsp_probe.errors import UsageError


def column_moments(table: torch.Tensor, rows_per_chunk: int = 8192):
    """Per-column E[x] and E[x^2] in float64, in chunks: a 7B model's table is ~1 GB in bf16."""
    table = table.detach()
    total = torch.zeros(table.shape[1], dtype=torch.float64)
    total_sq = torch.zeros(table.shape[1], dtype=torch.float64)
    for start in range(0, table.shape[0], rows_per_chunk):
        chunk = table[start:start + rows_per_chunk].to("cpu", torch.float64)
        total += chunk.sum(dim=0)
        total_sq += chunk.pow(2).sum(dim=0)
    return total / table.shape[0], total_sq / table.shape[0]


def scalar_moments(table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The scalar mu and sigma over every entry of the table (the paper's law), 0-d float64."""
    column_mean, column_sq = column_moments(table)
    mean = column_mean.mean()
    return mean, (column_sq.mean() - mean**2).clamp(min=0).sqrt()


def check_finite(mean: torch.Tensor, std: torch.Tensor, sigma_scale: float) -> None:
    """Refuse a law whose draws would not be finite float32 numbers (a huge --sigma-scale):
    the model would only turn them into NaN logits mid-run."""
    moments = torch.stack([mean.reshape(-1).abs().max(), std.reshape(-1).max()])
    if not bool(torch.isfinite(moments.float() * 8).all()):  # 8 sigma: the largest draws
        raise UsageError(f"--sigma-scale {sigma_scale:g}: the RSP's sigma "
                         f"({float(std.reshape(-1).max()):.3g}) does not fit float32")
