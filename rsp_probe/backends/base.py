"""The Backend protocol: everything rsp-probe asks of a model, and nothing more.

A backend owns one loaded model. The sampler drives it with batched prefill over left-padded
input embeddings, then one-token decode steps that carry the backend's own KV cache; the
influence experiment uses one teacher-forced full forward. Probes and interventions never see
hook names: they ask for a *site* (an attention pattern, the attention mass on a key group,
scores, a residual) at some layers, and each backend delivers that site its own way
(TransformerLens through hook points, a Hugging Face backend through its attention function).

    backend = load_model(None, backend="transformer-lens")  # rsp_probe.models; embedded model
    with backend.tapped([Tap(ATTN_KEY_MASS, layers, record, key_mask=rsp_keys)]):
        logits, cache = backend.prefill(embeds, mask, positions)  # logits [B, V]
        logits, cache = backend.decode(tokens, mask, positions, cache)

Shapes: B batch, T input length, Q query rows of this forward pass (T on prefill and forward,
1 on a decode step), K key positions (everything cached so far plus this pass), H heads,
V vocabulary, D d_model. Step values are float32 on the backend's device.

Interventions (the knockout issue) use the same taps: a tap whose function returns a tensor
replaces the site's value for the rest of the forward pass (for example attention scores with
the RSP keys set to -inf at chosen layers). Read-only probes return None.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

    from rsp_probe.backends.checkpoint import ModelInfo

# -- sites: where a tap reads (and, for interventions, writes) --------------------------------
ATTN_PATTERN = "attn_pattern"  # [B, H, Q, K] attention probabilities after softmax
ATTN_SCORES = "attn_scores"  # [B, H, Q, K] scaled, masked scores before softmax (editable)
ATTN_KEY_MASS = "attn_key_mass"  # [B, H, Q] probability mass on the keys of Tap.key_mask
RESID_POST = "resid_post"  # [B, Q, D] residual stream after the block
SITES = (ATTN_PATTERN, ATTN_SCORES, ATTN_KEY_MASS, RESID_POST)

# -- features a caller may ask `supports` about (besides the sites) ---------------------------
KV_CACHE = "kv_cache"  # decode steps reuse a cache instead of recomputing the prefix
INTERVENTIONS = "interventions"  # a tap may return a replacement value
FEATURES = (*SITES, KV_CACHE, INTERVENTIONS)

TapFunction = Callable[[int, "torch.Tensor"], "torch.Tensor | None"]  # (layer, value)


@dataclass(frozen=True)
class Tap:
    """A request to see (or replace) one site at some layers during every forward pass.

    `fn(layer, value)` is called once per listed layer per forward pass, in layer order.
    ATTN_KEY_MASS needs `key_mask` [B, K0]: 1.0 on the keys to sum over among the first K0
    key positions (the prompt); later keys (generated tokens) are never in the group.
    `newest_only` asks for the last query row only (Q = 1) where a backend can save work;
    a probe that reads `value[:, :, -1]` is correct either way.
    """

    site: str
    layers: tuple[int, ...]
    fn: TapFunction
    key_mask: torch.Tensor | None = None
    newest_only: bool = True

    def __post_init__(self) -> None:
        if self.site not in SITES:
            raise ValueError(f"unknown site {self.site!r}; expected one of {', '.join(SITES)}")
        if self.site == ATTN_KEY_MASS and self.key_mask is None:
            raise ValueError(f"a {ATTN_KEY_MASS} tap needs key_mask")


@runtime_checkable
class Backend(Protocol):
    """One loaded model behind the operations rsp-probe needs.

    Attributes: `name` (the backend's registry name), `info` (ModelInfo: n_layers, n_heads,
    d_model, d_vocab, n_ctx, ... as recorded in config.json), `tokenizer` (a Hugging Face
    tokenizer), `dtype` and `device` (torch).
    """

    name: str
    info: ModelInfo
    tokenizer: Any
    dtype: torch.dtype
    device: torch.device

    @property
    def embedding_table(self) -> torch.Tensor:
        """The input-embedding table W_E, [V, D], in the model's dtype and device."""

    @property
    def eos_token_ids(self) -> set[int]:
        """Token ids that end a trajectory (tokenizer EOS and the generation config's)."""

    def supports(self, feature: str) -> bool:
        """Whether this backend delivers a site or feature (see FEATURES)."""

    def n_parameters(self) -> int:
        """Number of model parameters."""

    def prefill(self, embeds: torch.Tensor, attention_mask: torch.Tensor,
                position_ids: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Run left-padded input embeddings [B, T, D] with mask [B, T] (1 = real) and
        position ids [B, T]; return the last position's logits [B, V] and a decode cache."""

    def decode(self, token_ids: torch.Tensor, attention_mask: torch.Tensor,
               position_ids: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        """One step: token ids [B, 1], the full mask so far [B, K], this step's position ids
        [B, 1] and the cache of the previous call; return logits [B, V] and the new cache."""

    def rewind(self, cache: Any, n_positions: int) -> Any:
        """Drop the newest n_positions from a decode cache (a step is then run again, e.g.
        with another mask: rsp_probe.interventions.knockout.PathIntervention)."""

    def forward(self, embeds: torch.Tensor) -> torch.Tensor:
        """Teacher-forced full forward over unpadded equal-length inputs [B, T, D]; return
        logits [B, T, V]."""

    def tapped(self, taps: Sequence[Tap]) -> AbstractContextManager[None]:
        """Deliver `taps` on every forward pass inside the block; removes exactly its own
        taps on exit, also when nested or on error."""


def check_taps(backend: Backend, taps: Sequence[Tap]) -> None:
    """Refuse taps a backend cannot deliver, with one line naming the backend and site."""
    for tap in taps:
        if not backend.supports(tap.site):
            raise ValueError(f"backend {backend.name} cannot deliver site {tap.site}")
        bad = [layer for layer in tap.layers if not 0 <= layer < backend.info.n_layers]
        if bad:
            raise ValueError(f"site {tap.site}: layers {bad} outside "
                             f"0..{backend.info.n_layers - 1}")


def all_layers(backend: Backend) -> tuple[int, ...]:
    return tuple(range(backend.info.n_layers))


def iter_layers(taps: Sequence[Tap], site: str) -> Iterator[tuple[int, Tap]]:
    """(layer, tap) for every tap at `site`, for backends that install one hook per layer."""
    for tap in taps:
        if tap.site == site:
            for layer in tap.layers:
                yield layer, tap
