"""Answer checks through math-verify, in worker processes that can be killed.

math-verify bounds its own work with signal.alarm, which only works in the main thread, and
some inputs (a power tower such as 2^{2^{2^{2^{2^{2^{2^{2}}}}}}}) keep sympy busy in C code for
ever. So each check runs in a process pool with math-verify's own timeouts switched off and
this module keeps the clock: a check running longer than `timeout_s` is killed with its worker
and comes back ungraded (correct=None, timed_out=True); the other checks go on in a fresh pool.

    grade_texts([("\\frac{1}{2}", "so \\boxed{0.5}.")])  -> [CheckResult(True, answer="0.5")]
    check_answers([("\\frac{1}{2}", "0.5")])              -> [CheckResult(True)]

A failed check is never "incorrect": `correct` is None and `error` says why. When the workers
cannot start at all (e.g. a program read from standard input, which spawn cannot re-import),
CheckerUnavailableError is raised. Each pair is (gold, text): math-verify is not symmetric.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.process import ORIGINAL_DIR

from rsp_probe.errors import CheckerUnavailableError
from rsp_probe.tasks import reading

_POLL_S = 0.05
_IN_FLIGHT_PER_WORKER = 4  # bounded submission: wait() on every pending future is O(n) a call
_MAX_CRASH_RETRIES = 1  # a check in flight when a worker died unexpectedly is retried once
_MAX_START_FAILURES = 2  # pools that died before starting any check, then give up
CANNOT_START = ("the answer checker's worker processes could not start: multiprocessing spawn "
                "re-imports the main program, which a program read from standard input, or a "
                "script without an `if __name__ == '__main__':` guard, does not allow")

_started: mp.Queue | None = None  # set in each worker by _init_worker


@dataclass(frozen=True)
class CheckResult:
    correct: bool | None  # None when the check failed: never counted as wrong
    answer: str | None = None  # the answer read from the text (grade_texts only)
    timed_out: bool = False
    error: str | None = None  # why the check failed, one line

    @property
    def graded(self) -> bool:
        return self.correct is not None


def _init_worker(started: mp.Queue) -> None:
    global _started
    _started = started
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # "timeout is disabled" warnings
    reading.grade_text("1", "\\boxed{1}")  # imports and regex compilation, off the clock


def _run_one(check: Callable, index: int, gold: str, text: str) -> tuple:
    assert _started is not None
    _started.put((index, os.getpid()))
    return check(gold, text)


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def grade_texts(pairs: Sequence[tuple[str, str]], timeout_s: float = 5.0,
                workers: int | None = None) -> list[CheckResult]:
    """Read the answer in each (gold, model text) pair and check it; one result per pair.

    Identical pairs are checked once, and the samples of one reference are sent together, so
    a model's repeated answers hit math-verify's own cache of parsed LaTeX (a miss costs its
    pure-Python parser ~50-100 ms, a hit ~1 ms). `workers` defaults to the number of CPUs.
    """
    unique = sorted(dict.fromkeys(pairs), key=lambda pair: pair[0])
    results = dict(zip(unique, run_checks(reading.grade_text, unique, timeout_s, workers)))
    return [results[pair] for pair in pairs]


def check_answers(pairs: Sequence[tuple[str, str]], timeout_s: float = 5.0,
                  workers: int | None = None) -> list[CheckResult]:
    """Check each (gold, extracted prediction) pair of bare answers with math-verify."""
    return run_checks(reading.compare_answers, pairs, timeout_s, workers)


@dataclass
class _Batch:
    """The state of one run_checks call, shared by the pools it needs."""

    check: Callable
    pairs: Sequence[tuple[str, str]]
    timeout_s: float
    workers: int
    results: dict[int, CheckResult] = field(default_factory=dict)
    crashes: dict[int, int] = field(default_factory=dict)
    started_any: bool = False
    start_failures: int = 0


def run_checks(check: Callable, pairs: Sequence[tuple[str, str]], timeout_s: float = 5.0,
               workers: int | None = None) -> list[CheckResult]:
    """Run `check(gold, text) -> (answer, correct)` on each pair in killable workers."""
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive; got {timeout_s}")
    if pairs:
        _refuse_unimportable_main()
    batch = _Batch(check, pairs, timeout_s, workers or max(1, min(len(pairs), os.cpu_count() or 1)))
    todo = list(range(len(pairs)))
    while todo:
        todo = _run_pool(batch, todo)
    return [batch.results[i] for i in range(len(pairs))]


def _refuse_unimportable_main() -> None:
    """Spawned workers first re-import the parent's main module from its file (as spawn's
    get_preparation_data does). A main read from standard input has no file: every worker
    would die printing a traceback, so say so in one line before starting any."""
    main = sys.modules["__main__"]
    if not hasattr(main, "__spec__"):
        # an interactive shell's namespace (a Jupyter kernel's): no file to re-import, but
        # spawn reads main.__spec__ unguarded; None is what a plain interactive Python has
        main.__spec__ = None
    if getattr(getattr(main, "__spec__", None), "name", None) is not None:
        return  # run with -m: re-imported by name
    path = getattr(main, "__file__", None)
    if path is not None and not os.path.exists(os.path.join(ORIGINAL_DIR or "", path)):
        raise CheckerUnavailableError(CANNOT_START)


def _run_pool(batch: _Batch, todo: list[int]) -> list[int]:
    """Run `todo` in one pool until done or a worker dies; return what is left to do."""
    ctx = mp.get_context("spawn")
    started: mp.Queue = ctx.Queue()
    running: dict[int, tuple[float, int]] = {}  # index -> (start time, worker pid)
    waiting, futures = deque(todo), {}
    pool = ProcessPoolExecutor(max_workers=min(batch.workers, len(todo)), mp_context=ctx,
                               initializer=_init_worker, initargs=(started,))
    broken = killed = False
    try:
        while (waiting or futures) and not (broken or killed):
            _submit(pool, batch, waiting, futures)
            done, _ = wait(futures, timeout=_POLL_S, return_when=FIRST_COMPLETED)
            broken = _collect(done, futures, batch.results, running)
            _drain(started, running, batch)
            killed = _kill_overdue(running, batch.results, batch.timeout_s)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _drain(started, running, batch)  # start reports that arrived late
        started.close()
        started.join_thread()
    _collect([f for f in futures if f.done()], futures, batch.results, running)
    if broken and not killed:
        _after_crash(batch, list(running) or list(futures.values()))
    return [i for i in todo if i not in batch.results]


def _submit(pool, batch: _Batch, waiting: deque, futures: dict) -> None:
    while waiting and len(futures) < batch.workers * _IN_FLIGHT_PER_WORKER:
        i = waiting.popleft()
        futures[pool.submit(_run_one, batch.check, i, *batch.pairs[i])] = i


def _collect(done, futures: dict, results: dict, running: dict) -> bool:
    """Store the results of finished futures; True if the pool turned out to be broken."""
    broken = False
    for fut in done:
        i = futures.pop(fut)
        if fut.cancelled():
            continue
        exc = fut.exception()
        if isinstance(exc, BrokenProcessPool):
            futures[fut] = i  # not checked: it stays for the next pool
            broken = True
            continue
        running.pop(i, None)
        if exc is None:
            answer, correct = fut.result()
            results[i] = CheckResult(correct=bool(correct), answer=answer)
        else:  # the checker raised: not graded, and the reason is kept
            results[i] = CheckResult(correct=None, error=_error_text(exc))
    return broken


def _drain(started: mp.Queue, running: dict, batch: _Batch) -> None:
    """Record start times reported by workers (ignoring checks that already finished)."""
    while True:
        try:
            i, pid = started.get_nowait()
        except (queue.Empty, OSError, ValueError):
            return
        batch.started_any = True
        if i not in batch.results:
            running[i] = (time.monotonic(), pid)


def _kill_overdue(running: dict, results: dict, timeout_s: float) -> bool:
    """Kill the worker of every check past its deadline; True if any was killed."""
    now = time.monotonic()
    overdue = [i for i, (t0, _) in running.items() if now - t0 > timeout_s]
    for i in overdue:
        _, pid = running.pop(i)
        results[i] = CheckResult(correct=None, timed_out=True,
                                 error=f"timed out: the check ran longer than {timeout_s:g} s")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it finished and exited in the meantime
    return bool(overdue)


def _after_crash(batch: _Batch, suspects: list[int]) -> None:
    """A worker died by itself. If no check has ever started, the workers cannot start at all;
    otherwise the checks it may have run are retried, up to _MAX_CRASH_RETRIES times."""
    if not batch.started_any:
        batch.start_failures += 1
        if batch.start_failures >= _MAX_START_FAILURES:
            raise CheckerUnavailableError(CANNOT_START)
        return
    for i in suspects:
        if i in batch.results:
            continue
        batch.crashes[i] = batch.crashes.get(i, 0) + 1
        if batch.crashes[i] > _MAX_CRASH_RETRIES:
            batch.results[i] = CheckResult(correct=None,
                                           error="the checker's worker process died")
