"""Reading run directories: `Run` (a lazily read, verified snapshot of one run),
`open_run` and `find_runs`. No torch."""

from __future__ import annotations

import hashlib
import json
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from rsp_probe.errors import UsageError
from rsp_probe.runio.formats import (
    CONFIG_FILE,
    DONE_FILE,
    META_FILE,
    RSP_FILE,
    STEPS_FILE,
    TRAJECTORIES_FILE,
)
from rsp_probe.runio.integrity import DamagedRunError, Snapshot, run_files

if TYPE_CHECKING:
    import numpy as np


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
