"""DONE as a strict manifest, and the snapshot a reader holds of a run.

DONE is written last, so its presence means "complete"; its content says what complete means:

    {"completed": "<time>", "schema_version": <int>,
     "files": {"<relative name>": {"sha256": "<64 hex>", "size": <int>}, ...}}

Anything else (empty, cut short, not JSON, a missing key, an entry that is not such an
object, a name outside the run, a schema_version that is not a known int) is a damaged run,
never a complete one. Runs written before DONE was a manifest (a bare timestamp) are sealed
once with `python -m rsp_probe.runio.seal RUN...`, which checks them first.

A reader opens a run as one snapshot (`Snapshot.open`): the directory, DONE and every file it
lists are opened through one directory descriptor and verified against DONE; the open file
descriptors keep those exact files readable even when another process publishes a new run
over the path and deletes the old one. A run replaced while it was being opened is opened
again; so a reader sees either the old run or the new one, whole, never a mix.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import time
import weakref
from pathlib import Path, PurePosixPath

from rsp_probe.errors import UsageError

DONE_FILE = "DONE"
CONFIG_FILE = "config.json"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_REOPEN_TRIES = 50  # a path republished 50 times while we open it once: give up


class DamagedRunError(UsageError):
    """A run directory that cannot be read as written: truncated, edited, or too new."""


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != DONE_FILE)


def write_manifest(folder: Path, schema_version: int, leave_out: tuple[str, ...] = ()) -> None:
    """DONE listing every file of `folder` but those named in `leave_out` (writer markers)."""
    files = {str(p.relative_to(folder)): {"sha256": file_digest(p), "size": p.stat().st_size}
             for p in run_files(folder) if str(p.relative_to(folder)) not in leave_out}
    done = {"completed": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "schema_version": schema_version,
            "files": files}
    (folder / DONE_FILE).write_text(json.dumps(done, indent=2, sort_keys=True) + "\n")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _safe_name(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return (bool(parts) and not PurePosixPath(name).is_absolute() and ".." not in parts
            and name != DONE_FILE and "\\" not in name and "\0" not in name)


def parse_manifest(data: bytes, folder: Path) -> dict:
    """DONE's content, checked field by field; DamagedRunError naming the first fault."""
    from rsp_probe.config import SCHEMA_VERSION

    def damaged(why: str) -> DamagedRunError:
        return DamagedRunError(f"{folder}: {DONE_FILE} is damaged ({why})")

    try:
        done = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise damaged("not a JSON manifest; a run older than manifests is sealed with "
                      "`python -m rsp_probe.runio.seal`") from None
    if not isinstance(done, dict) or set(done) != {"completed", "schema_version", "files"}:
        raise damaged("expected exactly the keys completed, schema_version, files")
    version = done["schema_version"]
    if not _is_int(version) or not 1 <= version:
        raise damaged(f"schema_version {version!r} is not a positive integer")
    if version > SCHEMA_VERSION:
        raise DamagedRunError(f"{folder}: written by a newer rsp-probe (run schema {version}; "
                              f"this version reads up to {SCHEMA_VERSION})")
    if not isinstance(done["completed"], str):
        raise damaged("completed is not a time")
    files = done["files"]
    if not isinstance(files, dict) or CONFIG_FILE not in files:
        raise damaged(f"its file list does not name {CONFIG_FILE}")
    for name, entry in files.items():
        if not _safe_name(name):
            raise damaged(f"{name!r} is not a file of the run")
        if not (isinstance(entry, dict) and set(entry) == {"sha256", "size"}
                and isinstance(entry["sha256"], str) and _SHA256.match(entry["sha256"])
                and _is_int(entry["size"]) and entry["size"] >= 0):
            raise damaged(f"the entry of {name} is not a sha256 and a size")
    return done


def read_manifest(folder: Path) -> dict:
    try:
        data = (Path(folder) / DONE_FILE).read_bytes()
    except FileNotFoundError:
        raise DamagedRunError(f"{folder}: the run did not complete (no {DONE_FILE})") from None
    return parse_manifest(data, Path(folder))


def verify(folder: Path) -> None:
    """Raise DamagedRunError naming the first file whose size or sha256 differs from DONE."""
    Snapshot.open(Path(folder)).close()


class _Replaced(Exception):
    """The path was published over while we opened it: open it again."""


def _raise_fd_limit() -> None:
    """Each open run holds a descriptor per file: allow as many as the system lets us."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY
                                                        else max(soft, 1 << 16), hard))
        except (ValueError, OSError):
            pass


class Snapshot:
    """One completed run, verified against its DONE and held open (see the module doc)."""

    def __init__(self, folder: Path, done: dict, fds: dict[str, int]):
        self.folder, self.done, self._fds = folder, done, fds
        self._finalizer = weakref.finalize(self, _close_all, list(fds.values()))

    @classmethod
    def open(cls, folder: Path) -> Snapshot:
        _raise_fd_limit()
        for _ in range(_REOPEN_TRIES):
            try:
                return cls._open_once(Path(folder))
            except _Replaced:
                time.sleep(0.01)
        raise DamagedRunError(f"{folder}: replaced over and over while being read; try again")

    @classmethod
    def _open_once(cls, folder: Path) -> Snapshot:
        try:
            dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            raise DamagedRunError(f"{folder}: no such run directory") from None
        fds: dict[str, int] = {}
        try:
            done = parse_manifest(_read_at(dir_fd, DONE_FILE, folder), folder)
            for name, expected in sorted(done["files"].items()):
                fds[name] = _open_at(dir_fd, name, folder)
                _check(fds[name], name, expected, folder)
            if _moved(folder, dir_fd):  # DONE and files came from a run no longer at the path
                raise _Replaced
            return cls(folder, done, fds)
        except DamagedRunError:
            _close_all(list(fds.values()))
            if _moved(folder, dir_fd):
                raise _Replaced from None
            raise
        except BaseException:
            _close_all(list(fds.values()))
            raise
        finally:
            os.close(dir_fd)

    @property
    def names(self) -> list[str]:
        return sorted(self._fds)

    def read(self, name: str) -> bytes:
        """The file's bytes as DONE lists them; DamagedRunError if DONE does not list it."""
        if name not in self._fds:
            raise DamagedRunError(f"{self.folder}: {name} is missing (not listed in "
                                  f"{DONE_FILE})")
        expected = self.done["files"][name]
        chunks, offset = [], 0
        while offset <= expected["size"] and (
                chunk := os.pread(self._fds[name], expected["size"] + 1 - offset, offset)):
            chunks.append(chunk)  # a pread may return less than asked (files over 2 GiB)
            offset += len(chunk)
        data = b"".join(chunks)
        if len(data) != expected["size"] or hashlib.sha256(data).hexdigest() != expected[
                "sha256"]:
            raise DamagedRunError(f"{self.folder}: {name} was changed in place after the run "
                                  "was opened")
        return data

    def close(self) -> None:
        self._finalizer()


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _moved(folder: Path, dir_fd: int) -> bool:
    try:
        here, there = os.stat(folder), os.fstat(dir_fd)
    except FileNotFoundError:
        return True
    return (here.st_dev, here.st_ino) != (there.st_dev, there.st_ino) or there.st_nlink == 0


def _open_at(dir_fd: int, name: str, folder: Path) -> int:
    try:
        return os.open(name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0), dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError):
        raise DamagedRunError(f"{folder}: {name} is missing (listed in {DONE_FILE})") from None
    except OSError as err:
        raise DamagedRunError(f"{folder}: {name} cannot be opened ({err.strerror})") from None


def _read_at(dir_fd: int, name: str, folder: Path) -> bytes:
    try:
        fd = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
    except FileNotFoundError:
        raise DamagedRunError(f"{folder}: the run did not complete (no {DONE_FILE})") from None
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _check(fd: int, name: str, expected: dict, folder: Path) -> None:
    size = os.fstat(fd).st_size
    if size != expected["size"]:
        raise DamagedRunError(f"{folder}: {name} is damaged ({size} bytes, "
                              f"{expected['size']} when written)")
    digest, offset = hashlib.sha256(), 0
    while block := os.pread(fd, 1 << 20, offset):
        digest.update(block)
        offset += len(block)
    if digest.hexdigest() != expected["sha256"]:
        raise DamagedRunError(f"{folder}: {name} is damaged (its sha256 differs from the one "
                              f"in {DONE_FILE})")
