"""The shapes readers rely on in trajectories.jsonl and steps.parquet, checked once when they
are read: a run consistent with its DONE can still have been written wrong (or forged with a
fresh DONE), and a reader must then say so in one line, never fail with a KeyError deep in an
analysis."""

from __future__ import annotations

from pathlib import Path

from rsp_probe.runio.integrity import DamagedRunError

STEP_COLUMNS = ("trajectory", "step", "probe", "layer", "head", "value")
# field -> the types it may have; required fields first
REQUIRED = {"id": (str,), "prompt_id": (str,), "condition": (str,)}
OPTIONAL = {"text": (str,), "reference_answer": (str, type(None)), "answer": (str, type(None)),
            "correct": (bool, type(None)), "grade_error": (str, type(None)),
            "generated_token_ids": (list,), "stop_reason": (str,),
            "rsp_tokens": (int,), "sample": (int,)}


def check_records(folder: Path, records: list[dict]) -> list[dict]:
    if not records:
        raise DamagedRunError(f"{folder}: trajectories.jsonl has no trajectories")
    for number, record in enumerate(records, 1):
        for name, types in REQUIRED.items():
            if not isinstance(record.get(name), types):
                raise DamagedRunError(f"{folder}: trajectories.jsonl line {number} has no "
                                      f"valid {name!r}")
        for name, types in OPTIONAL.items():
            if name in record and not _is(record[name], types):
                raise DamagedRunError(f"{folder}: trajectories.jsonl line {number}: {name!r} "
                                      f"is a {type(record[name]).__name__}")
    return records


def _is(value, types) -> bool:
    if isinstance(value, bool) and bool not in types:
        return False  # True is an int to Python, not a count to us
    return isinstance(value, types)


def check_steps_columns(folder: Path, names) -> None:
    missing = [c for c in STEP_COLUMNS if c not in names]
    if missing:
        raise DamagedRunError(f"{folder}: steps.parquet has no {', '.join(missing)} column")


def check_steps(folder: Path, frame):
    check_steps_columns(folder, frame.columns)
    return frame
