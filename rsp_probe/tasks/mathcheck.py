"""Answer equivalence through math-verify, in worker processes that can be killed.

math-verify bounds its own work with signal.alarm, which only works in the main thread, and
some inputs (a power tower such as 2^{2^{2^{2^{2^{2^{2^{2}}}}}}}) make sympy run for ever. So
each check runs in a process pool with math-verify's own timeouts switched off
(parse(..., parsing_timeout=None), verify(..., timeout_seconds=None)) and this module keeps the
clock: a check running longer than `timeout_s` counts as incorrect (timed_out=True), its
worker is killed, and the remaining checks go to a fresh pool.

    check_answers([("\\frac{1}{2}", "0.5")])  -> [CheckResult(correct=True, ...)]

Each pair is (gold, prediction): math-verify's comparison is not symmetric.
"""

import logging
import multiprocessing as mp
import os
import queue
import signal
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

_DELIMITERS = ("$", "\\boxed", "\\fbox", "\\(", "\\[")
_POLL_S = 0.05
_MAX_CRASH_RETRIES = 1  # a check in flight when a worker died unexpectedly is retried once

_started: "mp.Queue | None" = None  # set in each worker by _init_worker


@dataclass(frozen=True)
class CheckResult:
    correct: bool
    timed_out: bool = False
    error: str | None = None  # "ExceptionType: message" when the checker raised or died


def _as_answer(text: str) -> str:
    """Wrap a bare answer in \\boxed{} so math-verify reads it as LaTeX ("\\sqrt{2}/2").

    Text that already carries math delimiters or a box is left as it is.
    """
    if any(d in text for d in _DELIMITERS):
        return text
    return f"\\boxed{{{text}}}"


def _parse(text: str) -> list:
    from math_verify import parse

    parsed = parse(_as_answer(text), parsing_timeout=None)
    if not parsed and _as_answer(text) != text:
        parsed = parse(text, parsing_timeout=None)  # e.g. prose: "the answer is 42"
    return parsed


def verify_pair(gold: str, prediction: str) -> bool:
    """math-verify equivalence of one pair, with no timeout: run it through `check_answers`."""
    from math_verify import verify

    gold_parsed, pred_parsed = _parse(gold), _parse(prediction)
    if not gold_parsed or not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))


def _init_worker(started: "mp.Queue") -> None:
    global _started
    _started = started
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # "timeout is disabled" warnings
    import math_verify  # noqa: F401  (import cost is paid here, not on the first check's clock)


def _run_one(index: int, gold: str, prediction: str) -> bool:
    assert _started is not None
    _started.put((index, os.getpid()))
    return verify_pair(gold, prediction)


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def _default_workers(n_items: int) -> int:
    return max(1, min(n_items, os.cpu_count() or 1))


def check_answers(
    pairs: Sequence[tuple[str, str]], timeout_s: float = 5.0, workers: int | None = None
) -> list[CheckResult]:
    """Check each (gold, prediction) pair with math-verify; one CheckResult per pair, in order.

    A check running longer than `timeout_s` seconds (counted from when its worker picks it up)
    is incorrect with timed_out=True. A checker that raises is incorrect with `error` set.
    `workers` defaults to the number of CPUs.
    """
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive; got {timeout_s}")
    results: dict[int, CheckResult] = {}
    todo = list(range(len(pairs)))
    crashes = dict.fromkeys(todo, 0)
    n_workers = workers or _default_workers(len(pairs))
    ctx = mp.get_context("spawn")
    while todo:
        todo = _run_pool(pairs, todo, results, crashes, timeout_s, n_workers, ctx)
    return [results[i] for i in range(len(pairs))]


def _run_pool(pairs, todo, results, crashes, timeout_s, n_workers, ctx) -> list[int]:
    """Run `todo` in one pool until done or a worker dies; return what is left to do."""
    started: mp.Queue = ctx.Queue()
    running: dict[int, tuple[float, int]] = {}  # index -> (start time, worker pid)
    pool = ProcessPoolExecutor(
        max_workers=min(n_workers, len(todo)),
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(started,),
    )
    futures: dict[Future, int] = {pool.submit(_run_one, i, *pairs[i]): i for i in todo}
    pending = set(futures)
    broken = killed = False
    try:
        while pending and not (broken or killed):
            done, pending = wait(pending, timeout=_POLL_S, return_when=FIRST_COMPLETED)
            broken = _collect(done, futures, results, running)
            _drain(started, running, results)
            killed = _kill_overdue(running, results, timeout_s)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        started.close()
        started.join_thread()
    _collect([f for f in pending if f.done()], futures, results, running)
    if broken and not killed:  # a worker died by itself: blame the checks it may have run,
        _count_crashes(running or todo, results, crashes)  # or all if none had started
    return [i for i in todo if i not in results]


def _collect(done, futures: dict, results: dict, running: dict) -> bool:
    """Store the results of finished futures; True if the pool turned out to be broken."""
    broken = False
    for fut in done:
        i = futures[fut]
        if fut.cancelled():
            continue
        exc = fut.exception()
        if isinstance(exc, BrokenProcessPool):
            broken = True
            continue
        running.pop(i, None)
        if exc is None:
            results[i] = CheckResult(correct=bool(fut.result()))
        else:  # the checker raised: a wrong answer, reported
            results[i] = CheckResult(correct=False, error=_error_text(exc))
    return broken


def _drain(started: "mp.Queue", running: dict, results: dict) -> None:
    """Record start times reported by workers (ignoring checks that already finished)."""
    while True:
        try:
            i, pid = started.get_nowait()
        except queue.Empty:
            return
        if i not in results:
            running[i] = (time.monotonic(), pid)


def _kill_overdue(running: dict, results: dict, timeout_s: float) -> bool:
    """Kill the worker of every check past its deadline; True if any was killed."""
    now = time.monotonic()
    overdue = [i for i, (t0, _) in running.items() if now - t0 > timeout_s]
    for i in overdue:
        _, pid = running.pop(i)
        results[i] = CheckResult(correct=False, timed_out=True)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it finished and exited in the meantime
    return bool(overdue)


def _count_crashes(suspects, results: dict, crashes: dict) -> None:
    """Checks in flight when a worker died are retried, up to _MAX_CRASH_RETRIES times."""
    for i in suspects:
        if i in results:
            continue
        crashes[i] += 1
        if crashes[i] > _MAX_CRASH_RETRIES:
            results[i] = CheckResult(correct=False, error="worker process died during the check")
