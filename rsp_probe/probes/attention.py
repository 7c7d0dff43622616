"""Per layer and head, the newest query's attention summed over the RSP key positions."""

from __future__ import annotations

import torch

from rsp_probe.backends.base import ATTN_KEY_MASS, Tap
from rsp_probe.probes.base import BatchContext, PerLayerProbe
from rsp_probe.probes.names import ATTENTION_PROBE


class RSPAttentionProbe(PerLayerProbe):
    """Values [B, max_steps, n_layers, n_heads] on the model's device; a forward pass must
    deliver every layer exactly once, which `check_step` enforces. Rows without RSP keys
    report nothing."""

    def __init__(self, context: BatchContext):
        super().__init__(context, (ATTENTION_PROBE,))
        self.rsp_key_mask = context.rsp_key_mask.float()

    def taps(self) -> list[Tap]:
        return [Tap(ATTN_KEY_MASS, self.layers, self._deliver, key_mask=self.rsp_key_mask)]

    def _deliver(self, layer: int, mass: torch.Tensor) -> None:  # mass [B, H, Q]
        self.values[ATTENTION_PROBE][:, self.step - 1, layer] = mass[:, :, -1]
        self.delivered(layer)

    def rows(self) -> list[int]:
        return self.rsp_key_mask.any(dim=1).nonzero().flatten().tolist()


def rsp_attention_probe(context: BatchContext) -> RSPAttentionProbe | None:
    """The probe, or None for a batch without any RSP keys (nothing to attend to)."""
    return RSPAttentionProbe(context) if bool(context.rsp_key_mask.any()) else None
