"""The run directory: rsp-probe's public data contract. No torch here.

    config.json        full resolved configuration + schema_version
    meta.json          versions, git commit, device, dtype, wall time, status
    trajectories.jsonl one object per trajectory
    rsp.safetensors    the injected vectors, float32 [k, d_model] per trajectory id
    steps.parquet      tidy: trajectory, step, probe, layer, head, value (-1 = not applicable)
    DONE               written last; readers skip runs without it

A run is written into a hidden staging directory and moved into place only when complete,
so a crash or Ctrl-C never loses or corrupts an earlier run at the same path.
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
from dataclasses import dataclass
from functools import cached_property
from importlib import metadata
from pathlib import Path

import numpy as np

from rsp_probe.config import SCHEMA_VERSION
from rsp_probe.errors import UsageError

CONFIG_FILE = "config.json"
META_FILE = "meta.json"
TRAJECTORIES_FILE = "trajectories.jsonl"
RSP_FILE = "rsp.safetensors"
STEPS_FILE = "steps.parquet"
DONE_FILE = "DONE"
# derived files some experiments add (named here once; figures and summaries read them)
DILUTION_FILE = "dilution_fit.json"
BRANCHING_FILE = "branching.parquet"
PASSK_FILE = "passk.parquet"
KNOCKOUT_FILE = "knockout.parquet"
DOSE_FILE = "dose.parquet"
SCORE_SHIFT_FILE = "score_shift.parquet"


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


class RunWriter:
    """Collects a run's files in a staging directory; `finish` moves it to `out` with DONE."""

    def __init__(self, out: Path, config: dict, overwrite: bool = False):
        self.out = Path(out)
        check_output_dir(self.out, overwrite)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.staging = self.out.parent / f".{self.out.name}.partial-{os.getpid()}"
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir()
        self.started = time.time()
        self.config = {"schema_version": SCHEMA_VERSION, **config}
        write_json(self.staging / CONFIG_FILE, self.config)

    def write_trajectories(self, records: list[dict], rsp: dict[str, np.ndarray],
                           steps: dict[str, dict[str, np.ndarray]]) -> None:
        from safetensors.numpy import save_file

        with open(self.staging / TRAJECTORIES_FILE, "w") as handle:
            handle.writelines(json.dumps(record) + "\n" for record in records)
        save_file({key: np.ascontiguousarray(value, dtype=np.float32)
                   for key, value in rsp.items()}, str(self.staging / RSP_FILE))
        write_steps(self.staging / STEPS_FILE, steps)

    def write_table(self, name: str, frame) -> None:
        frame.to_parquet(self.staging / name, index=False)

    def write_json(self, name: str, payload) -> None:
        write_json(self.staging / name, payload)

    def staged_run(self) -> Run:
        """The run as written so far, for analyses whose results go into the run itself."""
        return Run(self.staging)

    def finish(self, meta: dict) -> Path:
        write_json(self.staging / META_FILE, self._meta(meta, "complete"))
        (self.staging / DONE_FILE).write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z") + "\n")
        previous = self.out.parent / f".{self.out.name}.previous-{os.getpid()}"
        if self.out.exists():
            self.out.rename(previous)
        self.staging.rename(self.out)
        shutil.rmtree(previous, ignore_errors=True)
        return self.out

    def abort(self, meta: dict, reason: str) -> None:
        """Keep a failed run for inspection only where nothing would be overwritten."""
        if self.out.exists():
            shutil.rmtree(self.staging, ignore_errors=True)
            return
        write_json(self.staging / META_FILE, {**self._meta(meta, "failed"), "error": reason})
        self.staging.rename(self.out)

    def _meta(self, meta: dict, status: str) -> dict:
        return {**provenance(), **meta, "status": status,
                "wall_time_s": round(time.time() - self.started, 3)}


def write_json(path: Path, payload) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=_json_default) + "\n")


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
    arrays = {name: np.concatenate(parts) if parts else np.array([]) for name, parts in
              columns.items()}
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
    versions = {}
    for package in ("rsp-probe", "torch", "transformers", "transformer-lens"):
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
    """A completed run directory, read lazily."""

    path: Path

    @cached_property
    def config(self) -> dict:
        return json.loads((self.path / CONFIG_FILE).read_text())

    @cached_property
    def meta(self) -> dict:
        return json.loads((self.path / META_FILE).read_text())

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
        with open(self.path / TRAJECTORIES_FILE) as handle:
            return pd.DataFrame.from_records([json.loads(line) for line in handle])

    @cached_property
    def steps(self):
        import pandas as pd

        frame = pd.read_parquet(self.path / STEPS_FILE)
        frame["trajectory"] = frame["trajectory"].astype(str)
        frame["probe"] = frame["probe"].astype(str)
        return frame

    def table(self, name: str):
        import pandas as pd

        return pd.read_parquet(self.path / name)

    def json(self, name: str):
        return json.loads((self.path / name).read_text())

    def rsp_vectors(self) -> dict[str, np.ndarray]:
        from safetensors.numpy import load_file

        return load_file(str(self.path / RSP_FILE))


def open_run(path: str | Path) -> Run:
    path = Path(path)
    if not (path / CONFIG_FILE).exists():
        raise UsageError(f"{path}: not a run directory (no {CONFIG_FILE})")
    if not (path / DONE_FILE).exists():
        raise UsageError(f"{path}: the run did not complete (no {DONE_FILE})")
    return Run(path)


def find_runs(paths: list[str | Path]) -> list[Run]:
    """Every completed run at or below `paths`; incomplete ones are skipped with a warning."""
    found = []
    for root in map(Path, paths):
        if not root.exists():
            raise UsageError(f"{root}: no such directory")
        candidates = [root] if (root / CONFIG_FILE).exists() else sorted(
            p.parent for p in root.rglob(CONFIG_FILE) if not p.parent.name.startswith("."))
        for candidate in candidates:
            if (candidate / DONE_FILE).exists():
                found.append(Run(candidate))
            else:
                warnings.warn(f"skipping incomplete run {candidate} (no {DONE_FILE})",
                              stacklevel=2)
    return found
