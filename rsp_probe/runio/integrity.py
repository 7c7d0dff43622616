"""DONE as a manifest: the sha256 and size of every file of the run, checked by readers.

DONE is written last, so its presence still means "complete"; its content now also says what
complete means. A DONE that is not JSON is the timestamp older versions wrote: such a run
has nothing to verify against and is read as before.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from rsp_probe.errors import UsageError

DONE_FILE = "DONE"


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


def write_manifest(folder: Path, schema_version: int) -> None:
    files = {str(p.relative_to(folder)): {"sha256": file_digest(p), "size": p.stat().st_size}
             for p in run_files(folder)}
    done = {"completed": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "schema_version": schema_version,
            "files": files}
    (folder / DONE_FILE).write_text(json.dumps(done, indent=2, sort_keys=True) + "\n")


def read_manifest(folder: Path) -> dict | None:
    text = (folder / DONE_FILE).read_text(errors="replace")
    try:
        done = json.loads(text)
    except ValueError:
        return None  # a legacy timestamp
    if not isinstance(done, dict) or not isinstance(done.get("files"), dict):
        raise DamagedRunError(f"{folder}: {DONE_FILE} is damaged (no file list)")
    return done


def verify(folder: Path) -> None:
    """Raise DamagedRunError naming the first file whose size or sha256 differs from DONE."""
    done = read_manifest(folder)
    if done is None:
        return
    for name, expected in sorted(done["files"].items()):
        path = folder / name
        if not path.is_file():
            raise DamagedRunError(f"{folder}: {name} is missing (listed in {DONE_FILE})")
        size = path.stat().st_size
        if size != expected.get("size"):
            raise DamagedRunError(f"{folder}: {name} is damaged ({size} bytes, "
                                  f"{expected.get('size')} when written)")
        if file_digest(path) != expected.get("sha256"):
            raise DamagedRunError(f"{folder}: {name} is damaged (its sha256 differs from "
                                  f"the one in {DONE_FILE})")
