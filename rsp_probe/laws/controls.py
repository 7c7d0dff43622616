"""The control laws: what is left of an RSP when one of its parts is taken away (`--law`).
The math (principal components, norm matching, NEFTune noise) is rsp_probe.controls.

    mean            k copies of the Gaussian law's mean vector (mu in every dimension): the
                    same positions and a typical location, no randomness
    pc-in, pc-out   a random direction inside (outside) the span of the embedding table's top
                    PC_FRACTION of principal components, scaled to the norm of the Gaussian
                    draw from the same seed (norm-matched)
    positions-only  the Gaussian draw in its k slots, but no query may attend to those keys
                    (blocks_rsp_keys: a knockout from step 1): only the position shift remains
    neftune         no slots (slots = False): uniform noise in [-1, 1] * alpha / sqrt(L d)
                    added to the L input embeddings (NEFTune, arXiv 2310.05914), alpha =
                    NEFTUNE_ALPHA * --sigma-scale

Every control's vectors are saved in rsp.safetensors under the trajectory id like an RSP:
[k, d_model] for the slot controls, [L, d_model] (the noise added to each input position)
for neftune.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rsp_probe.laws.base import register_law
from rsp_probe.laws.gaussian import GaussianLaw

if TYPE_CHECKING:
    import torch


@register_law
@dataclass(frozen=True, eq=False)
class MeanLaw(GaussianLaw):
    name = "mean"
    help = "k copies of the Gaussian law's mean, no randomness"

    def vectors(self, n, generator):
        return self.mean.expand(n, self.d_model).float().clone()


@dataclass(frozen=True, eq=False)
class PrincipalLaw(GaussianLaw):
    """A norm-matched random direction inside (`inside`) or outside the top principal
    components' span."""

    inside: ClassVar[bool]
    basis: torch.Tensor  # [d_model, P] orthonormal, float64

    @classmethod
    def fitted_extras(cls, table, sigma_scale):
        from rsp_probe.controls import principal_basis

        return {"basis": principal_basis(table.detach())}

    def vectors(self, n, generator):
        from rsp_probe.controls import norm_matched_direction

        gaussian = super().vectors(n, generator)
        return norm_matched_direction(self.basis, self.inside, gaussian, generator)

    def details(self):
        return {"principal_components": int(self.basis.shape[1])}


@register_law
@dataclass(frozen=True, eq=False)
class PcInLaw(PrincipalLaw):
    name, inside = "pc-in", True
    help = "a direction inside the top principal components' span, norm-matched"


@register_law
@dataclass(frozen=True, eq=False)
class PcOutLaw(PrincipalLaw):
    name, inside = "pc-out", False
    help = "a direction outside the top principal components' span, norm-matched"


@register_law
@dataclass(frozen=True, eq=False)
class PositionsOnlyLaw(GaussianLaw):
    name = "positions-only"
    help = "the Gaussian draw with its keys masked from step 1 (positions only)"
    blocks_rsp_keys = True


@register_law
@dataclass(frozen=True, eq=False)
class NEFTuneLaw(GaussianLaw):
    """draw(L, seed): the noise [L, d_model] added to the L input positions."""

    name = "neftune"
    help = "no slots, NEFTune noise added to every input embedding"
    slots = False

    alpha: float

    @classmethod
    def fitted_extras(cls, table, sigma_scale):
        from rsp_probe.controls import NEFTUNE_ALPHA

        return {"alpha": NEFTUNE_ALPHA * sigma_scale}

    def vectors(self, n, generator):
        from rsp_probe.controls import neftune_noise

        return neftune_noise(n, self.d_model, self.alpha, generator)

    def details(self):
        return {"alpha": self.alpha}
