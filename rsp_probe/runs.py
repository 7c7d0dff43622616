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
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from rsp_probe.config import SCHEMA_VERSION
from rsp_probe.errors import UsageError
from rsp_probe.runio.integrity import DamagedRunError, Snapshot, run_files, write_manifest
from rsp_probe.runio.lock import OutLock
from rsp_probe.runio.parts import (
    MERGED_FILE,
    PARTS_DIR,
    completed_parts,
    discard_incomplete_parts,
)
from rsp_probe.runio.publish import leftovers, publish, staging_path

CONFIG_FILE = "config.json"
META_FILE = "meta.json"
TRAJECTORIES_FILE = "trajectories.jsonl"
RSP_FILE = "rsp.safetensors"
STEPS_FILE = "steps.parquet"
DONE_FILE = "DONE"
# config keys that say how a run was executed, not what it measured: --resume may change them
EXECUTION_KEYS = ("out", "overwrite", "quiet", "resume", "workers", "ray_address")
KILL_POINT_ENV = "RSP_PROBE_KILL_AT"  # tests: SIGKILL ourselves at this named point
KILL_ONCE_ENV = "RSP_PROBE_KILL_ONCE"  # tests: ... only if this marker file can be created
KILL_SIGNAL_ENV = "RSP_PROBE_KILL_SIGNAL"  # tests: INT sends a Ctrl-C there instead
# derived files some experiments add (named here once; figures and summaries read them)
DILUTION_FILE = "dilution_fit.json"
BRANCHING_FILE = "branching.parquet"
PASSK_FILE = "passk.parquet"
KNOCKOUT_FILE = "knockout.parquet"
DOSE_FILE = "dose.parquet"
SCORE_SHIFT_FILE = "score_shift.parquet"
# per pair of trajectories of one prompt and condition, per step of their shared prefix:
# sum_v p_a(v) p_b(v) of the two tempered distributions (rsp_probe.probes.pair_overlap)
PAIR_OVERLAP_FILE = "pair_overlap.parquet"


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
        frame.to_parquet(self.staging / name, index=False)

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


def write_json(path: Path, payload) -> None:
    """Strict JSON (no NaN or Infinity, which strict readers reject)."""
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=_json_default,
                               allow_nan=False) + "\n")


def json_line(record: dict) -> str:
    return json.dumps(record, default=_json_default, allow_nan=False) + "\n"


def write_vectors(path: Path, vectors: dict[str, np.ndarray]) -> None:
    """float32 safetensors, written by Python so a full disk is an OSError like any other
    (safetensors' own writer raises its SafetensorError)."""
    from safetensors.numpy import save

    path.write_bytes(save({key: np.ascontiguousarray(value, dtype=np.float32)
                           for key, value in vectors.items()}))


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (Path, set, tuple)):
        return str(value) if isinstance(value, Path) else list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_steps(path: Path, steps: dict[str, dict[str, np.ndarray]]) -> None:
    """Flatten {trajectory: {probe: [S], [S, L] or [S, L, H]}} into the tidy long table
    (layer and head -1 where the array has no such axis); any other shape is refused."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, list[np.ndarray]] = {c: [] for c in
                                            ("trajectory", "step", "probe", "layer", "head",
                                             "value")}
    for trajectory, probes in steps.items():
        for probe, values in probes.items():
            values = np.asarray(values, dtype=np.float32)
            if values.ndim not in (1, 2, 3):
                raise ValueError(f"steps of trajectory {trajectory}: probe {probe!r} has shape "
                                 f"{list(values.shape)}; expected [S], [S, L] or [S, L, H]")
            grid = np.indices(values.shape).reshape(values.ndim, -1)
            n = values.size
            columns["trajectory"].append(np.full(n, trajectory, dtype=object))
            columns["probe"].append(np.full(n, probe, dtype=object))
            columns["step"].append(grid[0] + 1)
            columns["layer"].append(grid[1] if values.ndim >= 2 else np.full(n, -1))
            columns["head"].append(grid[2] if values.ndim == 3 else np.full(n, -1))
            columns["value"].append(values.reshape(-1))
    arrays = {name: np.concatenate(parts) if parts else  # typed, so no steps is a valid table
              np.array([], dtype=object if name in ("trajectory", "probe") else np.float32)
              for name, parts in columns.items()}
    table = pa.table({
        "trajectory": pa.array(arrays["trajectory"], pa.string()).dictionary_encode(),
        "step": pa.array(arrays["step"], pa.int32()),
        "probe": pa.array(arrays["probe"], pa.string()).dictionary_encode(),
        "layer": pa.array(arrays["layer"], pa.int16()),
        "head": pa.array(arrays["head"], pa.int16()),
        "value": pa.array(arrays["value"], pa.float32()),
    })
    pq.write_table(table, path)


def provenance() -> dict:
    """Versions and the git commit: what an lm-eval-harness result records."""
    from importlib import metadata  # only when a run is written: `show` starts faster

    from rsp_probe import __version__

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


@dataclass
class Run:
    """A run directory, read lazily. An opened run (`open_run`, `find_runs`) is a snapshot:
    every file is read from the run as its DONE lists it, even while another process
    publishes over the path (rsp_probe.runio.integrity). A file that cannot be parsed raises
    DamagedRunError (one line naming the run and the file), never a parser's traceback."""

    path: Path
    snapshot: Snapshot | None = field(default=None, repr=False, compare=False)
    name: str | None = None  # a staged run's: the name it will be published under

    @cached_property
    def config(self) -> dict:
        config = self.json(CONFIG_FILE)
        if not isinstance(config, dict) or "command" not in config:
            raise DamagedRunError(f"{self.path}: {CONFIG_FILE} is not an rsp-probe run config")
        return config

    @cached_property
    def meta(self) -> dict:
        meta = self.json(META_FILE)
        if not isinstance(meta, dict):
            raise DamagedRunError(f"{self.path}: {META_FILE} is not an object")
        return meta

    @property
    def command(self) -> str:
        return self.config["command"]

    @property
    def id(self) -> str:
        return self.name or self.path.name

    @cached_property
    def config_hash(self) -> str:
        canonical = json.dumps(self.config, sort_keys=True).encode()
        return hashlib.sha256(canonical).hexdigest()[:16]

    def has(self, name: str) -> bool:
        """Whether the run holds `name` (for an opened run: whether its DONE lists it)."""
        if self.snapshot is not None:
            return name in self.snapshot.names
        return (self.path / name).is_file()

    def files(self) -> list[str]:
        """The run's files: those DONE lists, for an opened run."""
        if self.snapshot is not None:
            return self.snapshot.names
        return [str(p.relative_to(self.path)) for p in run_files(self.path)]

    def read_bytes(self, name: str) -> bytes:
        if self.snapshot is not None:
            return self.snapshot.read(name)
        with self._damage_is_one_line(name):
            return (self.path / name).read_bytes()

    @cached_property
    def trajectories(self):
        import pandas as pd

        # Not pd.read_json: it turns "007" into 7 and 0.7 into 0.7000000000000001.
        return pd.DataFrame.from_records(self.records())

    def records(self) -> list[dict]:
        """trajectories.jsonl, one dict per line, checked (rsp_probe.runio.records)."""
        return [dict(record) for record in self._checked_records]

    @cached_property
    def _checked_records(self) -> list[dict]:
        from rsp_probe.runio.records import check_records

        return check_records(self.path, list(self._trajectory_records()))

    def _trajectory_records(self):
        data = self.read_bytes(TRAJECTORIES_FILE)
        for number, line in enumerate(data.splitlines(), 1):
            try:
                record = json.loads(line.decode("utf-8"), parse_constant=_refuse_constant)
            except ValueError:  # UnicodeDecodeError included
                raise DamagedRunError(f"{self.path}: {TRAJECTORIES_FILE} line {number} "
                                      "is not valid JSON") from None
            if not isinstance(record, dict):
                raise DamagedRunError(f"{self.path}: {TRAJECTORIES_FILE} line {number} "
                                      "is not an object")
            yield record

    @cached_property
    def steps(self):
        from rsp_probe.runio.records import check_steps

        frame = check_steps(self.path, self.table(STEPS_FILE))
        frame["trajectory"] = frame["trajectory"].astype(str)
        frame["probe"] = frame["probe"].astype(str)
        return frame

    def table(self, name: str):
        import io

        import pandas as pd

        data = self.read_bytes(name)
        with self._damage_is_one_line(name):
            return pd.read_parquet(io.BytesIO(data))

    def json(self, name: str):
        data = self.read_bytes(name)
        with self._damage_is_one_line(name):
            return json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)

    def rsp_vectors(self) -> dict[str, np.ndarray]:
        from safetensors.numpy import load

        data = self.read_bytes(RSP_FILE)
        with self._damage_is_one_line(RSP_FILE):
            return load(data)

    @contextmanager
    def _damage_is_one_line(self, name: str):
        try:
            yield
        except DamagedRunError:
            raise
        except FileNotFoundError:
            raise DamagedRunError(f"{self.path}: {name} is missing") from None
        except Exception as err:  # each parser has its own error types; all mean "damaged"
            detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise DamagedRunError(f"{self.path}: {name} is damaged ({detail})") from None

    def validate(self) -> Run:
        """Open the run as a snapshot: every file against DONE (strict), then the config and
        its schema version against DONE's. Raises DamagedRunError."""
        if self.snapshot is None:
            self.snapshot = Snapshot.open(self.path)
            self.__dict__.pop("config", None)
            self.__dict__.pop("meta", None)
        version = self.config.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise DamagedRunError(f"{self.path}: {CONFIG_FILE} has no valid schema_version")
        if version != self.snapshot.done["schema_version"]:
            raise DamagedRunError(f"{self.path}: {CONFIG_FILE} says schema {version}, "
                                  f"{DONE_FILE} says {self.snapshot.done['schema_version']}")
        self._check_shapes()
        return self

    def _check_shapes(self) -> None:
        """What every reader relies on: the trajectory records and the steps columns (the
        Parquet schema only, not the values)."""
        import io

        import pyarrow.parquet as pq

        from rsp_probe.runio.records import check_steps_columns

        self._checked_records  # noqa: B018 (parsed and checked once, kept for the readers)
        if self.has(STEPS_FILE):
            data = self.read_bytes(STEPS_FILE)
            with self._damage_is_one_line(STEPS_FILE):
                names = pq.read_schema(io.BytesIO(data)).names
            check_steps_columns(self.path, names)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def is_run_directory(path: Path) -> bool:
    """A folder whose config.json is an rsp-probe config (or unreadable): model checkpoints
    have a config.json too, without a `command`."""
    try:
        config = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return True  # a damaged run config, reported as such by the reader
    return isinstance(config, dict) and "command" in config


def open_run(path: str | Path) -> Run:
    path = Path(path)
    if not (path / CONFIG_FILE).exists():
        raise UsageError(f"{path}: not a run directory (no {CONFIG_FILE})")
    if not is_run_directory(path):
        raise UsageError(f"{path}: not a run directory ({CONFIG_FILE} is not an rsp-probe "
                         "run config; a model checkpoint?)")
    if not (path / DONE_FILE).exists():
        raise UsageError(f"{path}: the run did not complete (no {DONE_FILE})")
    return Run(path).validate()


def find_runs(paths: list[str | Path]) -> list[Run]:
    """Every completed, intact run at or below `paths`; incomplete and damaged ones are
    skipped with a one-line warning, folders that are not runs (checkpoints) silently."""
    found = []
    for root in map(Path, paths):
        if not root.exists():
            raise UsageError(f"{root}: no such directory")
        candidates = [root] if is_run_directory(root) else sorted(
            p.parent for p in root.rglob(CONFIG_FILE)
            if not p.parent.name.startswith(".") and is_run_directory(p.parent))
        for candidate in candidates:
            if not (candidate / DONE_FILE).exists():
                warnings.warn(f"skipping incomplete run {candidate} (no {DONE_FILE})",
                              stacklevel=2)
                continue
            try:
                found.append(Run(candidate).validate())
            except DamagedRunError as err:
                warnings.warn(f"skipping damaged run: {err}", stacklevel=2)
    return found
