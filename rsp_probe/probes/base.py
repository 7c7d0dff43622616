"""The StepProbe protocol and the probe registry.

A probe records scalars per (trajectory, step[, layer, head]) while the sampler decodes; it
never stores full patterns. The sampler owns the step index t (from 1: the forward pass whose
last-position output is the distribution over generated token t) and calls, for every probe
it is given:

    taps()             once per batch: the backend sites it needs (base.Tap), may be []
    begin_step(t)      before the forward pass of step t
    (the backend calls the taps' functions during the forward pass)
    record(t, logits)  after it, with the step's next-token logits [B, V]
    check_step()       after record: raise if the forward pass did not deliver what it must
    finalize(n_steps)  per row, {label: values [n_steps], [n_steps, L] or [n_steps, L, H]}
                       (numpy, float32), checked by `check_finalized`: a probe that declares
                       `labels` (a tuple, as BufferedProbe does) reports only those

A probe is built per batch by its factory from a BatchContext; a factory may return None
when the probe does not apply to the batch (attention mass without any RSP keys).
Adding a probe is one module that calls `register_probe`; the sampler never changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import torch

    from rsp_probe.backends.base import Tap


@dataclass(frozen=True)
class BatchContext:
    """What a probe may know about the batch it records."""

    n_rows: int
    max_steps: int
    n_layers: int
    n_heads: int
    device: torch.device
    rsp_key_mask: torch.Tensor  # [B, T_prompt], 1.0 on the RSP key positions (left-padded)
    temperature: torch.Tensor  # [B, 1] sampling temperature of each row
    key_groups: torch.Tensor | None = None  # [B, T_prompt] rsp_probe.key_groups codes, -1 pad


@runtime_checkable
class StepProbe(Protocol):
    def taps(self) -> list[Tap]: ...

    def begin_step(self, step: int) -> None: ...

    def record(self, step: int, logits: torch.Tensor) -> None: ...

    def check_step(self) -> None: ...

    def finalize(self, n_steps: Sequence[int]) -> list[dict[str, np.ndarray]]: ...


ProbeFactory = Callable[[BatchContext], "StepProbe | None"]

# name -> factory, or "module:attribute" of a factory, imported when first built (so listing
# probes, as `--help` does, imports no torch)
_REGISTRY: dict[str, ProbeFactory | str] = {
    "logits": "rsp_probe.probes.logits:LogitProbe",
    "collision": "rsp_probe.probes.logits:CollisionProbe",
    "rsp_attention": "rsp_probe.probes.attention:rsp_attention_probe",
    "attention_budget": "rsp_probe.probes.budget:AttentionBudgetProbe",
}
# what sampling experiments record unless told otherwise, in steps.parquet order
DEFAULT_PROBES = ("logits", "collision", "rsp_attention")
LOGIT_ONLY_PROBES = ("logits", "collision")  # for runs that never read attention


def register_probe(name: str, factory: ProbeFactory | str, overwrite: bool = False) -> None:
    """Make `name` available to the sampler (and to experiments' probe lists)."""
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"probe {name!r} is already registered (pass overwrite=True)")
    _REGISTRY[name] = factory


def unregister_probe(name: str) -> None:
    _REGISTRY.pop(name, None)


def list_probes() -> list[str]:
    return sorted(_REGISTRY)


def _factory(name: str) -> ProbeFactory:
    if name not in _REGISTRY:
        raise ValueError(f"unknown probe {name!r}; registered: {', '.join(list_probes())}")
    entry = _REGISTRY[name]
    if isinstance(entry, str):
        module, attribute = entry.split(":")
        entry = getattr(import_module(module), attribute)
    return entry


def build_probes(names: Iterable[str], context: BatchContext) -> list[StepProbe]:
    """The probes of one batch, in the order named; those that do not apply are left out."""
    return [probe for _, probe in named_probes(names, context)]


def named_probes(names: Iterable[str], context: BatchContext) -> list[tuple[str, StepProbe]]:
    """(registered name, probe) of one batch, as build_probes."""
    built = ((name, _factory(name)(context)) for name in names)
    return [(name, probe) for name, probe in built if probe is not None]


class ProbeContractError(RuntimeError):
    """A probe's finalize broke its contract: a defect of the probe, named in one line."""


def check_finalized(name: str, probe: StepProbe, rows: Sequence[dict], n_steps: Sequence[int],
                    context: BatchContext) -> None:
    """Refuse what steps.parquet would mislabel: a row count other than the batch's, a label
    the probe does not declare, or values not [n], [n, L] or [n, L, H] of the batch's model."""
    import numpy as np

    if len(rows) != len(n_steps):
        raise ProbeContractError(f"probe {name!r}: finalize returned {len(rows)} rows for a "
                                 f"batch of {len(n_steps)}")
    declared = getattr(probe, "labels", None)
    for row, (values, n) in enumerate(zip(rows, n_steps)):
        for label, array in values.items():
            if not isinstance(label, str) or (declared is not None and label not in declared):
                known = ", ".join(declared) if declared is not None else "strings"
                raise ProbeContractError(f"probe {name!r}: finalize returned label {label!r}; "
                                         f"it declares {known}")
            shape = tuple(np.shape(array))
            layers, heads = context.n_layers, context.n_heads
            if shape not in ((n,), (n, layers), (n, layers, heads)):
                raise ProbeContractError(
                    f"probe {name!r}: {label!r} of row {row} has shape {list(shape)}; expected "
                    f"[{n}], [{n}, {layers}] or [{n}, {layers}, {heads}] (steps, layers, heads)")


class BufferedProbe:
    """A probe that fills per-step buffers [B, max_steps, ...] on the model's device and
    hands back each row's first n_steps; subclasses fill `self.values` in `record` or taps."""

    def __init__(self, context: BatchContext, names: Sequence[str], shape: tuple[int, ...] = ()):
        import torch

        self.values = {name: torch.zeros(context.n_rows, max(context.max_steps, 1), *shape,
                                         device=context.device) for name in names}
        self.labels = tuple(names)  # what finalize may report (check_finalized)

    def taps(self) -> list[Tap]:
        return []

    def begin_step(self, step: int) -> None:
        pass

    def record(self, step: int, logits: torch.Tensor) -> None:
        pass

    def check_step(self) -> None:
        pass

    def rows(self) -> Sequence[int] | None:
        """Rows this probe reports (None: all)."""
        return None

    def finalize(self, n_steps: Sequence[int]) -> list[dict[str, np.ndarray]]:
        cpu = {name: values.cpu().numpy() for name, values in self.values.items()}
        kept = self.rows()
        return [{name: values[row, :n] for name, values in cpu.items()}
                if kept is None or row in kept else {} for row, n in enumerate(n_steps)]


class PerLayerProbe(BufferedProbe):
    """A buffered probe fed by taps at every layer: `delivered(layer)` counts the calls, and
    `check_step` refuses a forward pass that did not deliver each layer exactly once."""

    def __init__(self, context: BatchContext, names: Sequence[str]):
        super().__init__(context, names, (context.n_layers, context.n_heads))
        self.layers = tuple(range(context.n_layers))
        self.step = 0
        self._calls = [0] * context.n_layers

    def delivered(self, layer: int) -> None:
        self._calls[layer] += 1

    def begin_step(self, step: int) -> None:
        self.step = step
        self._calls = [0] * len(self.layers)

    def check_step(self) -> None:
        if any(calls != 1 for calls in self._calls):
            name = type(self).__name__
            raise RuntimeError(
                f"{name} at step {self.step}: expected one delivery per layer, got "
                f"{self._calls}; the model's attention path is not the one the probe expects")
