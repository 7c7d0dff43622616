"""Conventions fixed in code before any result is looked at: the step windows that summaries
and claims report (besides full per-step curves). Docs quote these names, never other
steps."""

from __future__ import annotations

import numpy as np

EARLY = (1, 3)  # the first generated tokens, where the paper puts the branching
MIDDLE = (4, 16)
# the last 10 steps of each trajectory (its own length, EOS included; a probe teacher-forced
# along a reference's tokens ends where the reference does, so it takes the reference's)
LATE_LAST = 10
WINDOWS = ("early", "middle", "late")


def in_window(window: str, steps, lengths) -> np.ndarray:
    """Boolean mask: which (step, trajectory length) pairs fall in `window`. Steps are
    1-based; `lengths` is each step's trajectory length. Middle and late may overlap on short
    trajectories: a step belongs to every window it falls in."""
    steps = np.asarray(steps)
    lengths = np.broadcast_to(np.asarray(lengths), steps.shape)
    if window == "early":
        return (steps >= EARLY[0]) & (steps <= EARLY[1])
    if window == "middle":
        return (steps >= MIDDLE[0]) & (steps <= MIDDLE[1])
    if window == "late":
        return (steps > lengths - LATE_LAST) & (steps <= lengths)
    raise ValueError(f"unknown window {window!r}; expected one of {', '.join(WINDOWS)}")
