"""One writer per --out: an flock'ed `.NAME.lock` file next to the run, holding the PID.

flock (not O_EXCL) because the kernel drops it when the holder dies, even by SIGKILL: a lock
file left by a dead process is therefore never an obstacle, only a stale PID that we report
and take over. The file lives next to --out, not inside it, because publishing swaps the
run directory itself.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

from rsp_probe.errors import UsageError


def lock_path(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 64, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


class OutLock:
    """Held from before the model loads until the run is published or abandoned."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.path = lock_path(self.out)
        self.fd: int | None = None

    def acquire(self) -> OutLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            while self.fd is None:
                self.fd = self._try_once()
        except OSError as err:
            raise UsageError(f"--out {self.out}: cannot create its lock file ({err})") from None
        return self

    def _try_once(self) -> int | None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise UsageError(f"--out {self.out}: another rsp-probe run (PID {holder}) is "
                             "writing it; wait for it to finish or choose another --out") from None
        try:  # the previous holder may have unlinked the file between our open and flock
            same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            return None
        previous = _read_pid(fd)
        if previous and previous != os.getpid() and not pid_alive(previous):
            print(f"rsp-probe: note: taking over the stale lock of {self.out} left by PID "
                  f"{previous}, which is no longer running", file=sys.stderr)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still holding it: no one else has it
        finally:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False


def is_locked(out: Path) -> bool:
    """Whether a live process holds the lock of `out` right now."""
    path = lock_path(out)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
