"""Progress of a run's decoding: trajectories done of total, tokens per second, an ETA.

On a terminal a tqdm bar counts tokens; its total starts at the most tokens the work can take
(every trajectory to --max-new-tokens) and shrinks by each finished row's unused budget, so
it ends at exactly 100%. Without a terminal (a scheduler's log file) one line is printed every
`interval` seconds (RSP_PROBE_PROGRESS_INTERVAL, default 10) and one when the work ends.
"""

from __future__ import annotations

import os
import sys
import time

INTERVAL_ENV = "RSP_PROBE_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 10.0


def progress_interval() -> float:
    text = os.environ.get(INTERVAL_ENV)
    try:
        return max(0.0, float(text)) if text else DEFAULT_INTERVAL
    except ValueError:
        return DEFAULT_INTERVAL


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """Counts what the sampler reports (`expect`, `advance`) and shows it.

    `plan(trajectories, max_new_tokens)` announces work done in several phases up front, so
    the totals (and the ETA) cover the whole run from the start; each phase's `expect` then
    counts against the plan instead of adding to it.
    """

    def __init__(self, what: str, stream=None, interval: float | None = None,
                 terminal: bool | None = None):
        self.what = what
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = self.stream.isatty() if terminal is None else terminal
        self.interval = progress_interval() if interval is None else interval
        self.planned = (0, 0)  # (trajectories, tokens) announced by `plan`
        self.expected = (0, 0)  # (trajectories, tokens) of the phases started
        self.done = self.tokens = self.unused = 0
        self.start = self.last_line = time.monotonic()
        self.bar = None

    @property
    def total_trajectories(self) -> int:
        return max(self.planned[0], self.expected[0])

    @property
    def total_tokens(self) -> int:
        """The most tokens the work can still take, plus those generated."""
        return max(self.planned[1], self.expected[1]) - self.unused

    def plan(self, trajectories: int, max_new_tokens: int) -> None:
        self.planned = (trajectories, trajectories * max_new_tokens)
        self._show()

    def expect(self, trajectories: int, max_new_tokens: int) -> None:
        self.expected = (self.expected[0] + trajectories,
                         self.expected[1] + trajectories * max_new_tokens)
        self._show()

    def advance(self, tokens: int, finished: int = 0, unused: int = 0) -> None:
        """`tokens` generated; `finished` trajectories ended, leaving `unused` budget."""
        self.tokens += tokens
        self.done += finished
        self.unused += unused
        self._show(tokens)

    def _show(self, tokens: int = 0) -> None:
        if self.terminal:
            if self.bar is None:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=self.total_tokens, desc=self.what, unit="tok",
                                file=self.stream, dynamic_ncols=True)
            self.bar.total = self.total_tokens
            self.bar.set_postfix_str(f"{self.done}/{self.total_trajectories} trajectories",
                                     refresh=False)
            self.bar.update(tokens)
            return
        now = time.monotonic()
        if self.tokens and now - self.last_line >= self.interval:
            self.last_line = now
            print(self.line(now), file=self.stream, flush=True)

    def line(self, now: float | None = None) -> str:
        elapsed = max((now or time.monotonic()) - self.start, 1e-9)
        rate = self.tokens / elapsed
        text = (f"{self.what}: {self.done}/{self.total_trajectories} trajectories, "
                f"{rate:.0f} tok/s, {duration(elapsed)} elapsed")
        if self.done < self.total_trajectories and rate > 0:
            text += f", ETA {duration(self.remaining_tokens() / rate)}"
        return text

    def remaining_tokens(self) -> float:
        """Tokens still to come: every trajectory at the mean length of the finished ones,
        less the tokens generated (never more than the budget left); the whole budget left
        before any trajectory ends."""
        left = self.total_tokens - self.tokens
        if self.done:
            budget = (self.total_tokens + self.unused) / max(self.total_trajectories, 1)
            mean_length = (self.done * budget - self.unused) / self.done
            left = min(left, self.total_trajectories * mean_length - self.tokens)
        return max(left, 0.0)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif not self.terminal and self.tokens:
            print(self.line(), file=self.stream, flush=True)
