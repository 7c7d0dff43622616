"""The paper's law and its two plain variants (`--law gaussian | per-dim | tokens`).

    gaussian   i.i.d. N(mu, sigma^2) entries, mu and sigma^2 the mean and variance of every
               entry of the embedding table (the paper's law); sigma times --sigma-scale
    per-dim    N(mu_j, sigma^2) per dimension j: the table's column means, pooled variance
    tokens     rows of the table itself, drawn uniformly from the real (non-special) tokens
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rsp_probe.laws.base import Law, register_law

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True, eq=False)
class MomentLaw(Law):
    """A law with a location `mean` ([] or [d_model]) and a scale `std` ([]), float64 on the
    CPU, whose draw is mean + std * N(0, I) unless a subclass draws otherwise."""

    d_model: int
    mean: torch.Tensor
    std: torch.Tensor  # sigma, already multiplied by sigma_scale

    def vectors(self, n, generator):
        return (self.mean + self.std * self.noise(n, generator)).float()

    def noise(self, n: int, generator) -> torch.Tensor:
        """N(0, I) [n, d_model] in float64."""
        import torch

        return torch.randn(n, self.d_model, generator=generator, dtype=torch.float64)

    def details(self) -> dict:
        """What describe() adds between d_model and the moments."""
        return {}

    def describe(self) -> dict:
        return {**super().describe(), **self.details(), "mu": float(self.mean.mean()),
                "sigma": float(self.std)}


@register_law
@dataclass(frozen=True, eq=False)
class GaussianLaw(MomentLaw):
    name = "gaussian"
    help = "N(mu, sigma^2) per entry, fitted to all embedding entries (the paper's)"

    @classmethod
    def fit(cls, table, sigma_scale=1.0, **context):
        from rsp_probe.laws.moments import check_finite

        mean, std = cls.moments(table)
        std = std * sigma_scale
        check_finite(mean, std, sigma_scale)
        return cls(table.shape[1], mean, std, **cls.fitted_extras(table, sigma_scale))

    @classmethod
    def moments(cls, table) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, sigma) before sigma_scale."""
        from rsp_probe.laws.moments import scalar_moments

        return scalar_moments(table)

    @classmethod
    def fitted_extras(cls, table, sigma_scale: float) -> dict:
        """The fields a subclass adds to the Gaussian moments, fitted to the table."""
        return {}


@register_law
@dataclass(frozen=True, eq=False)
class PerDimLaw(GaussianLaw):
    name = "per-dim"
    help = "N(mu_j, sigma^2) with per-dimension means, pooled variance"

    @classmethod
    def moments(cls, table):
        from rsp_probe.laws.moments import column_moments

        column_mean, column_sq = column_moments(table)
        return column_mean, (column_sq - column_mean**2).clamp(min=0).mean().sqrt()


@register_law
@dataclass(frozen=True, eq=False)
class TokensLaw(Law):
    """Real rows of the table; `mean` and `std` are the Gaussian law's (not scaled), kept for
    callers that size things by sigma."""

    name = "tokens"
    help = "real token embeddings (rows of the table, special tokens left out)"

    d_model: int
    mean: torch.Tensor
    std: torch.Tensor
    token_pool: torch.Tensor  # the real token ids drawn from
    table: torch.Tensor

    @classmethod
    def fit(cls, table, sigma_scale=1.0, *, special_ids=None, n_real_tokens=None, **context):
        import torch

        from rsp_probe.laws.moments import scalar_moments

        table = table.detach()
        n_rows = min(n_real_tokens or table.shape[0], table.shape[0])
        pool = torch.tensor([i for i in range(n_rows) if i not in (special_ids or set())])
        return cls(table.shape[1], *scalar_moments(table), token_pool=pool, table=table)

    def vectors(self, n, generator):
        import torch

        picks = torch.randint(0, self.token_pool.numel(), (n,), generator=generator)
        return self.table[self.token_pool[picks].to(self.table.device)].float().cpu()

    def describe(self) -> dict:
        return {**super().describe(), "token_pool_size": int(self.token_pool.numel())}
