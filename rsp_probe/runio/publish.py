"""Atomic publish of a staged run, and the leftovers a killed run can leave behind.

Publishing replaces `out` with the staging directory in one step. Where the kernel offers it
(Linux >= 3.15 on ext4, xfs, btrfs, tmpfs, ...), renameat2(RENAME_EXCHANGE) swaps the two
directories atomically: a reader, or a crash, sees either the old run or the new one, never
an empty path. The old run then sits at the staging path and is deleted. Elsewhere we fall
back to two renames (old -> `.NAME.previous`, staging -> out); a crash between them leaves
the old run at `.NAME.previous`, which `rsp-probe clean` puts back. We chose this over a
symlinked run path because `out` stays a plain directory for every existing reader.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from rsp_probe.runio.lock import is_locked

RENAME_EXCHANGE = 2  # from linux/fs.h
AT_FDCWD = -100
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>partial|previous|lock|shards)(-\d+)?$")


def staging_path(out: Path) -> Path:
    return out.parent / f".{out.name}.partial"


def previous_path(out: Path) -> Path:
    return out.parent / f".{out.name}.previous"


def _renameat2():
    name = ctypes.util.find_library("c")
    try:
        function = ctypes.CDLL(name, use_errno=True).renameat2
    except (OSError, AttributeError, TypeError):  # no libc or glibc < 2.28
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                         ctypes.c_uint]
    return function


def exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically; False where the system cannot (then nothing moved)."""
    function = _renameat2()
    if function is None:
        return False
    result = function(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(a))


def publish(staging: Path, out: Path, hook=lambda point: None) -> None:
    """Move `staging` to `out`, replacing any run there without ever leaving `out` absent."""
    if not out.exists():
        os.rename(staging, out)
        return
    hook("exchange")
    if exchange(staging, out):
        hook("exchanged")
        shutil.rmtree(staging, ignore_errors=True)  # the old run, now at the staging path
        return
    previous = previous_path(out)
    os.rename(out, previous)
    hook("renamed-away")
    os.rename(staging, out)
    shutil.rmtree(previous, ignore_errors=True)


@dataclass(frozen=True)
class Leftover:
    path: Path
    out: Path  # the run path it belongs to
    kind: str  # partial | previous | lock | shards (of a killed --workers run)

    def describe(self) -> str:
        if self.kind == "partial" and not (self.path / "DONE").exists():
            return f"{self.path.name}: an interrupted run of {self.out.name}"
        if self.kind == "previous" and not self.out.exists():
            return f"{self.path.name}: the earlier run of {self.out.name}, to be put back"
        return f"{self.path.name}: left by a killed run of {self.out.name}"


def leftovers(folder: Path) -> list[Leftover]:
    """Staging folders, displaced runs and lock files that no live run is using."""
    found = []
    try:
        entries = sorted(Path(folder).iterdir())
    except OSError:
        return []
    for entry in entries:
        match = _LEFTOVER.match(entry.name)
        if not match:
            continue
        out = entry.parent / match["name"]
        if not is_locked(out):
            found.append(Leftover(entry, out, match["kind"]))
    return found


def clean(folder: Path) -> list[str]:
    """Remove leftovers (putting back a displaced run whose path is empty); say what was done."""
    done = []
    for item in leftovers(folder):
        if item.kind == "previous" and not item.out.exists():
            os.rename(item.path, item.out)
            done.append(f"restored {item.out} from {item.path.name}")
        elif item.path.is_dir() and not item.path.is_symlink():
            shutil.rmtree(item.path)
            done.append(f"removed {item.path}")
        else:
            item.path.unlink(missing_ok=True)
            done.append(f"removed {item.path}")
    return done
