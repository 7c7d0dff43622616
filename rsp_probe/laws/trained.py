"""The laws of a trained soft prompt (`--law trained | trained+noise | trained-fit` with
`--soft-prompt FILE`, rsp_probe.soft_prompts), placed and sampled like an RSP.

    trained        the trained vectors themselves, the same in every trajectory
    trained+noise  the trained vectors plus RSP noise N(0, (sigma_scale * sigma)^2) per
                   trajectory (sigma fitted to the embedding table, as for the Gaussian law)
    trained-fit    a fresh draw per trajectory from a Gaussian fitted to the trained vectors:
                   their per-dimension mean and pooled variance (the `per-dim` law's form)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rsp_probe.errors import UsageError
from rsp_probe.laws.base import register_law
from rsp_probe.laws.gaussian import MomentLaw

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True, eq=False)
class SoftPromptLaw(MomentLaw):
    """A law built on a trained soft prompt `prompt` [k, d_model] (float32, CPU). Its mean
    and std are the Gaussian law's (sigma times sigma_scale) unless `fit_moments` says
    otherwise."""

    needs_soft_prompt = True

    prompt: torch.Tensor

    @classmethod
    def fit(cls, table, sigma_scale=1.0, *, prompt=None, **context):
        import torch

        if prompt is None:
            raise UsageError(f"--law {cls.name} needs --soft-prompt FILE (from `rsp-probe "
                             "tune-prompt`)")
        if prompt.shape[1] != table.shape[1]:
            raise UsageError(f"the soft prompt's width {prompt.shape[1]} does not match the "
                             f"model's d_model {table.shape[1]}")
        mean, std = cls.fit_moments(table.detach(), prompt.detach().to("cpu", torch.float64))
        return cls(table.shape[1], mean, std * sigma_scale, prompt=prompt.float().cpu())

    @classmethod
    def fit_moments(cls, table, vectors) -> tuple[torch.Tensor, torch.Tensor]:
        from rsp_probe.laws.moments import scalar_moments

        return scalar_moments(table)

    def check_k(self, n: int) -> None:
        if n != self.prompt.shape[0]:
            raise UsageError(f"the soft prompt has k={self.prompt.shape[0]} vectors, not {n}")

    def details(self):
        return {"soft_prompt_k": int(self.prompt.shape[0])}


@register_law
@dataclass(frozen=True, eq=False)
class TrainedLaw(SoftPromptLaw):
    name = "trained"
    help = "the --soft-prompt vectors, the same in every trajectory"

    def vectors(self, n, generator):
        self.check_k(n)
        return self.prompt.clone()


@register_law
@dataclass(frozen=True, eq=False)
class TrainedNoiseLaw(SoftPromptLaw):
    name = "trained+noise"
    help = "the --soft-prompt vectors plus Gaussian noise at --sigma-scale"

    def vectors(self, n, generator):
        self.check_k(n)
        return (self.prompt.double() + self.std * self.noise(n, generator)).float()


@register_law
@dataclass(frozen=True, eq=False)
class TrainedFitLaw(SoftPromptLaw):
    name = "trained-fit"
    help = "redrawn from a Gaussian fitted to the --soft-prompt vectors"

    @classmethod
    def fit_moments(cls, table, vectors):
        mean = vectors.mean(dim=0)
        return mean, (vectors - mean).pow(2).mean().sqrt()
