"""The kinds of files a run directory holds, and how each is written: strict JSON, JSON
lines, float32 vectors (safetensors) and the tidy steps table (parquet). Storage knows these
kinds, never which experiment writes what. No torch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rsp_probe.runio.integrity import DONE_FILE as DONE_FILE

CONFIG_FILE = "config.json"
META_FILE = "meta.json"
TRAJECTORIES_FILE = "trajectories.jsonl"
RSP_FILE = "rsp.safetensors"
STEPS_FILE = "steps.parquet"


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
