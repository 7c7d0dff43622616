"""What a knockout does, parsed and checked without torch (so bad input fails before any
model is loaded).

A knockout blocks queries from the RSP keys (their scores set to the dtype's lowest value
before the softmax, so they get exactly zero weight) at some layers from some step on:

    cut from step s on every query computed at step s or later: s = 1 is the prefill pass,
                       so every input position (the prompt's positions after the RSP
                       included) and every generated token; s = never blocks nothing
    layers             the layers where the keys are masked (default: all)
    path               one path of the RSP's influence kept (at every layer, every step):
                       direct    only the newest query reads the RSP keys; every other
                                 non-RSP position computes its keys and values as if the RSP
                                 were invisible to it
                       indirect  the newest query is blocked from the RSP keys; the earlier
                                 positions read them as in the full run
                       Sampling a path runs every step twice over the cache (the newest
                       position's logits under one mask, then its keys and values under the
                       other: rsp_probe.interventions.knockout.PathIntervention).

With a KV cache a position's keys and values are computed once, at the step that adds it,
so "blocked at step t" is the same as "the query rows whose step is >= s are blocked" in a
teacher-forced full forward (rsp_probe.interventions.knockout.row_steps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rsp_probe.errors import UsageError

NEVER = "never"
PATHS = ("direct", "indirect")


@dataclass(frozen=True)
class Knockout:
    cut_after: int | None  # first blocked step (1 = prefill); None: never
    layers: tuple[int, ...] | None = None  # None: every layer
    path: str | None = None  # one of PATHS (then cut_after and layers are unused)

    @property
    def name(self) -> str:
        if self.path is not None:
            return f"{self.path}-only"
        if self.layers is not None:
            return f"layer{'+'.join(map(str, self.layers))}" + (
                "" if self.cut_after == 1 else f"@{self.cut_after}")
        return f"cut{NEVER if self.cut_after is None else self.cut_after}"

    def describe(self) -> dict:
        return {"name": self.name, "cut_after": self.cut_after,
                "layers": None if self.layers is None else list(self.layers),
                "path": self.path}


def parse_cut_steps(values: Sequence[str]) -> tuple[int | None, ...]:
    """'1,2,4,never' -> (1, 2, 4, None); a step below 1 or a word other than never fails."""
    steps = []
    for value in values:
        text = str(value).strip().lower()
        if text == NEVER:
            steps.append(None)
            continue
        try:
            step = int(text)
        except ValueError:
            raise UsageError(
                f"--cut-after: expected steps >= 1 or 'never', got {value!r}") from None
        if step < 1:
            raise UsageError(f"--cut-after: step {step} is below 1 (step 1 is the prefill pass)")
        steps.append(step)
    return tuple(steps)


def check_layers(layers: Sequence[int], n_layers: int) -> tuple[int, ...]:
    bad = [layer for layer in layers if not 0 <= layer < n_layers]
    if bad:
        raise UsageError(f"--block-layers: layer(s) {bad} outside 0..{n_layers - 1}")
    return tuple(layers)


def parse_paths(values: Sequence[str]) -> tuple[str, ...]:
    """'direct,indirect' -> ('direct', 'indirect'); 'none' (or nothing) -> ()."""
    paths = [str(value).strip().lower() for value in values]
    if paths == ["none"]:
        return ()
    bad = [path for path in paths if path not in PATHS]
    if bad:
        raise UsageError(f"--paths: expected {' and/or '.join(PATHS)} (or none), got {bad}")
    return tuple(dict.fromkeys(paths))
