"""The run directory: rsp-probe's public data contract. No torch here.

    config.json        full resolved configuration + schema_version
    meta.json          versions, git commit, device, dtype, wall time, status
    trajectories.jsonl one object per trajectory
    rsp.safetensors    the injected vectors, float32 [k, d_model] per trajectory id
    steps.parquet      tidy: trajectory, step, probe, layer, head, value (-1 = not applicable)
    DONE               written last: sha256 and size of every other file (JSON); readers
                       skip runs without it and refuse files that differ from it

A run is written into the hidden staging directory `.NAME.partial` while an flock'ed
`.NAME.lock` keeps other writers out, and swapped into place atomically only when complete
(rsp_probe.runio.publish), so a crash, Ctrl-C or SIGKILL never loses or corrupts an earlier
run at the same path. JSON is strict: NaN and Infinity are refused, never written.

This module writes runs (RunWriter); the file kinds and their writers are in
rsp_probe.runio.formats, the readers (Run, open_run, find_runs) in rsp_probe.runio.reader,
both importable from here. Storage knows kinds of files, never an experiment: the tables an
experiment adds are named by the code that writes and reads them (rsp_probe.analysis.tables).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from rsp_probe.config import SCHEMA_VERSION
from rsp_probe.errors import UsageError
from rsp_probe.runio.formats import (
    CONFIG_FILE,
    DONE_FILE,
    META_FILE,
    RSP_FILE,
    STEPS_FILE,
    TRAJECTORIES_FILE,
    json_line,
    write_json,
    write_steps,
    write_vectors,
)
from rsp_probe.runio.integrity import write_manifest
from rsp_probe.runio.lock import OutLock
from rsp_probe.runio.parts import (
    MERGED_FILE,
    PARTS_DIR,
    completed_parts,
    discard_incomplete_parts,
)
from rsp_probe.runio.publish import leftovers, publish, staging_path
from rsp_probe.runio.reader import Run, find_runs, is_run_directory, open_run

# the run directory's public names, importable from here as before the split into runio/
__all__ = ["CONFIG_FILE", "DONE_FILE", "EXECUTION_KEYS", "META_FILE", "RSP_FILE", "STEPS_FILE",
           "TRAJECTORIES_FILE", "Run", "RunWriter", "find_runs", "is_run_directory",
           "json_line", "open_run", "prepare_out", "provenance", "resolve_out", "write_json",
           "write_steps", "write_vectors"]

# config keys that say how a run was executed, not what it measured: --resume may change them
EXECUTION_KEYS = ("out", "overwrite", "quiet", "resume", "workers", "ray_address")
PARTIAL_SUFFIX = ".writing"  # a staged file being written (write_table); never published
KILL_POINT_ENV = "RSP_PROBE_KILL_AT"  # tests: SIGKILL ourselves at this named point
KILL_ONCE_ENV = "RSP_PROBE_KILL_ONCE"  # tests: ... only if this marker file can be created
KILL_SIGNAL_ENV = "RSP_PROBE_KILL_SIGNAL"  # tests: INT sends a Ctrl-C there instead


def resolve_out(out: str | Path) -> Path:
    """The run path to write: `.` or `..` made absolute (so the run has a name, and its lock
    file lies beside it, not inside it); a symbolic link followed to the directory it names
    (publishing swaps directories: a link would be replaced, then never cleaned)."""
    out = Path(out)
    if out.name in ("", "..", "."):
        out = Path(os.path.abspath(out))
    if out.is_symlink():
        target = Path(os.path.realpath(out))
        if not target.exists():
            raise UsageError(f"--out {out}: a symbolic link to {target}, which does not exist")
        out = target
    return out


def check_output_dir(out: Path, overwrite: bool) -> None:
    """Refuse early, before any model is loaded, if writing `out` would destroy something."""
    if not out.exists():
        return
    if not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    if (out / DONE_FILE).exists() and not overwrite:
        raise UsageError(f"--out {out}: a completed run is already there (use --overwrite)")
    if any(out.iterdir()) and not (out / CONFIG_FILE).exists():
        raise UsageError(f"--out {out}: a non-empty directory that is not a run; choose another")


def kill_point(name: str) -> None:
    """Fault injection for the crash tests: die here, as by power loss, when asked to; with
    KILL_ONCE_ENV only the first process to get here dies (a retried Ray task lives)."""
    if os.environ.get(KILL_POINT_ENV) != name:
        return
    once = os.environ.get(KILL_ONCE_ENV)
    if once:
        try:
            os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
    import signal

    interrupt = os.environ.get(KILL_SIGNAL_ENV) == "INT"
    os.kill(os.getpid(), signal.SIGINT if interrupt else signal.SIGKILL)


def prepare_out(out: Path, overwrite: bool) -> OutLock:
    """Lock `out` for this run and check it may be written, before any model is loaded."""
    out = resolve_out(out)
    lock = OutLock(out).acquire()
    try:
        check_output_dir(out, overwrite)
        found = [item for item in leftovers(out.parent) if item.path != staging_path(out)]
        if found:
            print(f"rsp-probe: note: {len(found)} leftover(s) of killed runs in {out.parent} "
                  f"({'; '.join(item.describe() for item in found[:3])}); "
                  f"`rsp-probe clean {out.parent}` removes them", file=sys.stderr)
    except BaseException:
        lock.release()
        raise
    return lock


class RunWriter:
    """Collects a run's files in a staging directory; `finish` swaps it into `out` with DONE.

    Holds the lock of `out` (taken here unless the caller took it already) until finish or
    abort."""

    def __init__(self, out: Path, config: dict, overwrite: bool = False,
                 lock: OutLock | None = None, resume: bool = False):
        self.out = resolve_out(out)
        self.lock = lock or prepare_out(self.out, overwrite)
        try:
            self.staging = staging_path(self.out)
            self.started = time.time()
            self.config = {"schema_version": SCHEMA_VERSION, **config}
            if not (resume and self._reuse_staging()):
                self._fresh_staging(overwrite, resume)
            self.resumed_batches = completed_parts(self.staging)
        except BaseException:
            self.lock.release()  # the staging folder stays: it may be an interrupted run
            raise

    def _fresh_staging(self, overwrite: bool, resume: bool) -> None:
        if self.staging.exists():
            interrupted = not (self.staging / DONE_FILE).exists()  # DONE: a displaced old run
            if interrupted and not (overwrite or resume):
                raise UsageError(f"--out {self.out}: an interrupted run is staged in "
                                 f"{self.staging.name}; --resume continues it, --overwrite "
                                 f"or `rsp-probe clean {self.out.parent}` discards it")
            _remove(self.staging)
        self.staging.mkdir()
        write_json(self.staging / CONFIG_FILE, self.config)

    def _reuse_staging(self) -> bool:
        """Keep an interrupted run's staging when its configuration is the same."""
        if not self.staging.is_dir() or (self.staging / DONE_FILE).exists():
            return False
        try:
            staged = json.loads((self.staging / CONFIG_FILE).read_text())
        except (OSError, ValueError):
            return False  # killed before its config was written: nothing to reuse
        changed = sorted(key for key in {*staged, *self.config} - set(EXECUTION_KEYS)
                         if staged.get(key) != self.config.get(key))
        if changed:
            raise UsageError(f"--resume: the interrupted run in {self.staging.name} has a "
                             f"different {', '.join(changed)}; rerun it with the same options")
        discard_incomplete_parts(self.staging)
        for leftover in self.staging.glob(f"*{PARTIAL_SUFFIX}"):  # a write the kill cut short
            leftover.unlink()
        write_json(self.staging / CONFIG_FILE, self.config)
        return True

    def write_part(self, number: int, records: list[dict], vectors, steps) -> None:
        """One finished batch, appended to the staging directory (rsp_probe.runio.parts)."""
        from rsp_probe.runio.parts import write_part

        write_part(self.staging, number, records, vectors, steps, kill=kill_point)
        kill_point(f"batch-{number}-done")

    def merge_parts(self) -> None:
        from rsp_probe.runio.parts import merge_parts

        merge_parts(self.staging, self.staging / TRAJECTORIES_FILE, self.staging / RSP_FILE,
                    self.staging / STEPS_FILE)
        kill_point("merged")

    def write_trajectories(self, records: list[dict], rsp: dict[str, np.ndarray],
                           steps: dict[str, dict[str, np.ndarray]]) -> None:
        with open(self.staging / TRAJECTORIES_FILE, "w") as handle:
            handle.writelines(json_line(record) for record in records)
        write_vectors(self.staging / RSP_FILE, rsp)
        write_steps(self.staging / STEPS_FILE, steps)

    def write_table(self, name: str, frame) -> None:
        """Written whole or not at all (a temporary file renamed into place), so a table an
        experiment rewrites as it goes is never found half written by --resume."""
        temporary = self.staging / f"{name}{PARTIAL_SUFFIX}"
        frame.to_parquet(temporary, index=False)
        os.replace(temporary, self.staging / name)

    def write_json(self, name: str, payload) -> None:
        write_json(self.staging / name, payload)

    def write_derived(self, files: dict) -> None:
        """An experiment's derived files: dicts as JSON, tables as Parquet."""
        for name, value in files.items():
            (self.write_json if isinstance(value, dict) else self.write_table)(name, value)

    def staged_run(self) -> Run:
        """The run as written so far, for analyses whose results go into the run itself."""
        return Run(self.staging, name=self.out.name)

    def finish(self, meta: dict) -> Path:
        """Publish the staged run. Ctrl-C before it is in place keeps it staged, without
        DONE, for --resume (its batches are merged: nothing is recomputed)."""
        published = []
        try:
            write_json(self.staging / META_FILE, self._meta(meta, "complete"))
            shutil.rmtree(self.staging / PARTS_DIR, ignore_errors=True)  # merged: not needed
            kill_point("parts-deleted")
            write_manifest(self.staging, SCHEMA_VERSION, leave_out=(MERGED_FILE,))
            kill_point("publish")
            publish(self.staging, self.out, hook=lambda point: (
                published.append(point in ("exchanged", "renamed-away")),
                kill_point(f"publish-{point}")))
        except KeyboardInterrupt:
            if not any(published) and (self.staging / MERGED_FILE).exists():
                (self.staging / DONE_FILE).unlink(missing_ok=True)  # interrupted, not done
                self.lock.release()
            else:
                self._discard()
            raise
        except BaseException:
            self._discard()
            raise
        (self.out / MERGED_FILE).unlink(missing_ok=True)  # not in DONE; a reader ignores it
        self.lock.release()
        return self.out

    def abort(self, meta: dict, reason: str) -> None:
        """Keep a failed run for inspection only where nothing would be overwritten; never
        raise from here (a full disk must not hide the error that brought us here)."""
        try:
            if self.out.exists():
                return
            write_json(self.staging / META_FILE, {**self._meta(meta, "failed"), "error": reason})
            os.rename(self.staging, self.out)
        except OSError:
            pass
        finally:
            self._discard()

    def suspend(self) -> None:
        """Ctrl-C: keep the staged batches for --resume, let other writers in."""
        self.lock.release()

    def discard(self) -> None:
        """Drop the staged run and let other writers in (bad input found mid-run)."""
        self._discard()

    def _discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        self.lock.release()

    def _meta(self, meta: dict, status: str) -> dict:
        return {**provenance(), **meta, "status": status,
                "wall_time_s": round(time.time() - self.started, 3)}


def _remove(path: Path) -> None:
    """A staged folder, or the link an older version left in its place."""
    if path.is_symlink():
        path.unlink()
    else:
        shutil.rmtree(path)


def provenance() -> dict:
    """Versions and the git commit: what an lm-eval-harness result records."""
    from importlib import metadata  # only when a run is written: `show` starts faster

    from rsp_probe._version import __version__

    versions = {"rsp-probe": __version__}  # this source tree's, whatever pip last installed
    for package in ("torch", "transformers", "transformer-lens"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"versions": versions, "git_commit": _git_commit(), "python": sys.version.split()[0],
            "platform": platform.platform(), "cpu_count": os.cpu_count()}


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None
