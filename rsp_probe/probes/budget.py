"""The attention budget: per layer and head, the newest query's attention on each key group
(rsp, bos, prompt, cue, generated; rsp_probe.key_groups), read from the attention pattern.

The input groups are summed over the pattern's first K0 keys (the left-padded input), the
generated group over the keys after them, so the five values sum to the softmax's total
only if padding keys carry no mass and the groups partition the keys (a test checks 1).
"""

from __future__ import annotations

import torch

from rsp_probe.backends.base import ATTN_PATTERN, Tap
from rsp_probe.key_groups import INPUT_GROUPS
from rsp_probe.probes.base import BatchContext, PerLayerProbe
from rsp_probe.probes.names import BUDGET_PROBES


class AttentionBudgetProbe(PerLayerProbe):
    """Values per group [B, max_steps, n_layers, n_heads]; one delivery per layer and step."""

    def __init__(self, context: BatchContext):
        super().__init__(context, BUDGET_PROBES)
        codes = context.key_groups  # [B, K0] group codes, -1 on padding
        # one-hot [B, K0, 4] over the input groups (padding rows all zero)
        self.one_hot = torch.stack([(codes == g).float() for g in range(len(INPUT_GROUPS))],
                                   dim=-1)

    def taps(self) -> list[Tap]:
        return [Tap(ATTN_PATTERN, self.layers, self._deliver, newest_only=True)]

    def _deliver(self, layer: int, pattern: torch.Tensor) -> None:  # pattern [B, H, Q, K]
        newest = pattern[:, :, -1].float()  # [B, H, K]
        n_input = self.one_hot.shape[1]
        masses = torch.einsum("bhk,bkg->bgh", newest[..., :n_input], self.one_hot)
        for index, name in enumerate(BUDGET_PROBES[:-1]):
            self.values[name][:, self.step - 1, layer] = masses[:, index]
        self.values[BUDGET_PROBES[-1]][:, self.step - 1, layer] = (
            newest[..., n_input:].sum(dim=-1))  # generated keys [B, H]
        self.delivered(layer)
