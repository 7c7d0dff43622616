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
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from rsp_probe.config import SCHEMA_VERSION
from rsp_probe.errors import UsageError
from rsp_probe.runio.integrity import DamagedRunError, read_manifest, verify, write_manifest
from rsp_probe.runio.lock import OutLock
from rsp_probe.runio.parts import completed_parts, discard_incomplete_parts
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

    os.kill(os.getpid(), signal.SIGKILL)


def prepare_out(out: Path, overwrite: bool) -> OutLock:
    """Lock `out` for this run and check it may be written, before any model is loaded."""
    out = Path(out)
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
        self.out = Path(out)
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
            shutil.rmtree(self.staging)
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
        return Run(self.staging)

    def finish(self, meta: dict) -> Path:
        try:
            write_json(self.staging / META_FILE, self._meta(meta, "complete"))
            write_manifest(self.staging, SCHEMA_VERSION)
            kill_point("publish")
            publish(self.staging, self.out, hook=lambda point: kill_point(f"publish-{point}"))
        except BaseException:
            self._discard()
            raise
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

    def _discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        self.lock.release()

    def _meta(self, meta: dict, status: str) -> dict:
        return {**provenance(), **meta, "status": status,
                "wall_time_s": round(time.time() - self.started, 3)}


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
    """Flatten {trajectory: {probe: [S] or [S, L, H]}} into the tidy long table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, list[np.ndarray]] = {c: [] for c in
                                            ("trajectory", "step", "probe", "layer", "head",
                                             "value")}
    for trajectory, probes in steps.items():
        for probe, values in probes.items():
            values = np.asarray(values, dtype=np.float32)
            grid = np.indices(values.shape).reshape(values.ndim, -1)
            n = values.size
            columns["trajectory"].append(np.full(n, trajectory, dtype=object))
            columns["probe"].append(np.full(n, probe, dtype=object))
            columns["step"].append(grid[0] + 1)
            columns["layer"].append(grid[1] if values.ndim == 3 else np.full(n, -1))
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
    """A completed run directory, read lazily. A file that cannot be parsed raises
    DamagedRunError (one line naming the run and the file), never a parser's traceback."""

    path: Path

    @cached_property
    def config(self) -> dict:
        config = self.json(CONFIG_FILE)
        if not isinstance(config, dict) or "command" not in config:
            raise DamagedRunError(f"{self.path}: {CONFIG_FILE} is not an rsp-probe run config")
        return config

    @cached_property
    def meta(self) -> dict:
        return self.json(META_FILE)

    @property
    def command(self) -> str:
        return self.config["command"]

    @property
    def id(self) -> str:
        return self.path.name

    @cached_property
    def config_hash(self) -> str:
        canonical = json.dumps(self.config, sort_keys=True).encode()
        return hashlib.sha256(canonical).hexdigest()[:16]

    @cached_property
    def trajectories(self):
        import pandas as pd

        # Not pd.read_json: it turns "007" into 7 and 0.7 into 0.7000000000000001.
        return pd.DataFrame.from_records(list(self._trajectory_records()))

    def _trajectory_records(self):
        with self._damage_is_one_line(TRAJECTORIES_FILE):
            with open(self.path / TRAJECTORIES_FILE, encoding="utf-8") as handle:
                for number, line in enumerate(handle, 1):
                    try:
                        yield json.loads(line, parse_constant=_refuse_constant)
                    except ValueError:
                        raise DamagedRunError(f"{self.path}: {TRAJECTORIES_FILE} line {number} "
                                              "is not valid JSON") from None

    @cached_property
    def steps(self):
        frame = self.table(STEPS_FILE)
        frame["trajectory"] = frame["trajectory"].astype(str)
        frame["probe"] = frame["probe"].astype(str)
        return frame

    def table(self, name: str):
        import pandas as pd

        with self._damage_is_one_line(name):
            return pd.read_parquet(self.path / name)

    def json(self, name: str):
        with self._damage_is_one_line(name):
            return json.loads((self.path / name).read_text(encoding="utf-8"),
                              parse_constant=_refuse_constant)

    def rsp_vectors(self) -> dict[str, np.ndarray]:
        from safetensors.numpy import load_file

        with self._damage_is_one_line(RSP_FILE):
            return load_file(str(self.path / RSP_FILE))

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
        """Config, schema version and every file against DONE; legacy runs (no manifest) are
        parsed instead. Raises DamagedRunError."""
        version = self.config.get("schema_version")
        if not isinstance(version, int):
            raise DamagedRunError(f"{self.path}: {CONFIG_FILE} has no valid schema_version")
        if version > SCHEMA_VERSION:
            raise DamagedRunError(f"{self.path}: written by a newer rsp-probe (run schema "
                                  f"{version}; this version reads up to {SCHEMA_VERSION})")
        with self._damage_is_one_line(DONE_FILE):
            manifest = read_manifest(self.path)
        if manifest is not None:
            verify(self.path)
            return self
        for _ in self._trajectory_records():
            pass
        for name in (n for n in (STEPS_FILE,) if (self.path / n).exists()):
            import pyarrow.parquet as pq

            with self._damage_is_one_line(name):
                pq.read_metadata(self.path / name)
        return self


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
