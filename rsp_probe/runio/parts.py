"""Streaming run directory: each finished batch becomes part files in `staging/parts/`, and
publishing merges them into the contract files, so memory stays O(batch) however large the
run. A part counts only once its `.done` marker exists (written last), so a run killed at any
point resumes from its last complete batch.

    parts/00007.jsonl         the batch's trajectory records, one per line
    parts/00007.safetensors   their RSP vectors
    parts/00007.parquet       their step values (the tidy steps.parquet schema)
    parts/00007.done          the batch is complete

The merge keeps the old file order: trajectories.jsonl in job order (by each record's
position, written as `_order` in the part and dropped in the merge), steps.parquet one row
group per part, rsp.safetensors keys sorted as safetensors sorts them.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

PARTS_DIR = "parts"
ORDER_KEY = "_order"
# written once the parts are merged into the contract files: the numbers of the merged parts.
# --resume then knows every batch is done even after the parts are deleted (RunWriter.finish
# deletes them, and leaves this marker out of DONE)
MERGED_FILE = "parts.merged"


def part_path(staging: Path, number: int, suffix: str) -> Path:
    return staging / PARTS_DIR / f"{number:05d}.{suffix}"


def write_part(staging: Path, number: int, records: list[dict], vectors: dict, steps: dict,
               kill=lambda point: None) -> None:
    """Write one batch's part files, then its marker. `records` carry ORDER_KEY."""
    from rsp_probe.runio.formats import json_line, write_steps, write_vectors

    (staging / PARTS_DIR).mkdir(exist_ok=True)
    with open(part_path(staging, number, "jsonl"), "w") as handle:
        handle.writelines(json_line(record) for record in records)
    kill(f"batch-{number}-partial")
    write_vectors(part_path(staging, number, "safetensors"), vectors)
    write_steps(part_path(staging, number, "parquet"), steps)
    _fsync_dir_entries(staging / PARTS_DIR, number)
    part_path(staging, number, "done").write_text(f"{len(records)}\n")


def _fsync_dir_entries(folder: Path, number: int) -> None:
    """The data must be on disk before the marker says so (power loss, not only SIGKILL)."""
    for suffix in ("jsonl", "safetensors", "parquet"):
        fd = os.open(folder / f"{number:05d}.{suffix}", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def completed_parts(staging: Path) -> list[int]:
    merged = merged_parts(staging)
    if merged is not None:
        return merged
    folder = staging / PARTS_DIR
    if not folder.is_dir():
        return []
    return sorted(int(p.stem) for p in folder.glob("*.done"))


def merged_parts(staging: Path) -> list[int] | None:
    """The parts already merged into the contract files (MERGED_FILE), or None."""
    try:
        numbers = json.loads((staging / MERGED_FILE).read_text())
    except (OSError, ValueError):
        return None
    return numbers if isinstance(numbers, list) else None


def discard_incomplete_parts(staging: Path) -> None:
    if merged_parts(staging) is not None:  # merged: the parts are no longer needed
        shutil.rmtree(staging / PARTS_DIR, ignore_errors=True)
        return
    done = set(completed_parts(staging))
    for file in (staging / PARTS_DIR).glob("*") if (staging / PARTS_DIR).is_dir() else ():
        if int(file.stem) not in done:
            file.unlink()


def merge_parts(staging: Path, trajectories: Path, vectors: Path, steps: Path) -> None:
    """The contract files from the complete parts, then MERGED_FILE; the parts stay until
    the run is published (a run killed in between resumes without recomputing them). A run
    merged already (a resumed one) is left as it is."""
    if merged_parts(staging) is not None:
        return
    numbers = completed_parts(staging)
    _merge_jsonl([part_path(staging, n, "jsonl") for n in numbers], trajectories)
    merge_safetensors([part_path(staging, n, "safetensors") for n in numbers], vectors)
    merge_parquet([part_path(staging, n, "parquet") for n in numbers], steps)
    for path in (trajectories, vectors, steps):  # on disk before the marker says so
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    (staging / MERGED_FILE).write_text(json.dumps(numbers) + "\n")


def _merge_jsonl(parts: list[Path], out: Path) -> None:
    """Lines back in job order: an index of (order, part, offset, length), then copies."""
    index = []
    for number, part in enumerate(parts):
        offset = 0
        with open(part, "rb") as handle:
            for line in handle:
                index.append((json.loads(line)[ORDER_KEY], number, offset, len(line)))
                offset += len(line)
    index.sort()
    handles = [open(part, "rb") for part in parts]
    try:
        with open(out, "w") as target:
            for _, number, offset, length in index:
                handles[number].seek(offset)
                record = json.loads(handles[number].read(length))
                del record[ORDER_KEY]
                target.write(json.dumps(record, allow_nan=False) + "\n")
    finally:
        for handle in handles:
            handle.close()


def _source(part: Path | bytes):
    """A part to read: a file, or the verified bytes of an opened run's file (merge)."""
    import io

    return io.BytesIO(part) if isinstance(part, bytes) else open(part, "rb")


def merge_parquet(parts: list[Path | bytes], out: Path) -> None:
    """One row group per part, streamed: never more than one part in memory."""
    import pyarrow.parquet as pq

    from rsp_probe.runio.formats import write_steps

    if not parts:
        write_steps(out, {})
        return
    with _source(parts[0]) as handle:
        schema = pq.read_schema(handle)
    with pq.ParquetWriter(out, schema) as writer:
        for part in parts:
            with _source(part) as handle:
                writer.write_table(pq.read_table(handle, schema=schema))


def _safetensors_header(path: Path | bytes) -> tuple[dict, int]:
    with _source(path) as handle:
        (size,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(size))
    header.pop("__metadata__", None)
    return header, 8 + size


def merge_safetensors(parts: list[Path | bytes], out: Path) -> None:
    """Concatenate the tensors of several files without loading them: a new header with
    shifted offsets, then each part's data block copied in order."""
    headers = [_safetensors_header(part) for part in parts]
    merged, shift = {}, 0
    for header, _ in headers:
        end = 0
        for key, entry in header.items():
            if key in merged:
                raise ValueError(f"tensor {key!r} appears in two parts")
            start, stop = entry["data_offsets"]
            merged[key] = {**entry, "data_offsets": [start + shift, stop + shift]}
            end = max(end, stop)
        shift += end
    text = json.dumps(merged, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format aligns the data block to 8 bytes
    with open(out, "wb") as target:
        target.write(struct.pack("<Q", len(text)) + text)
        for part, (header, data_start) in zip(parts, headers):
            length = max((e["data_offsets"][1] for e in header.values()), default=0)
            with _source(part) as source:
                source.seek(data_start)
                _copy(source, target, length)


def _copy(source, target, length: int) -> None:
    while length > 0:
        block = source.read(min(length, 1 << 20))
        if not block:
            raise ValueError("a part ends before its header says")
        target.write(block)
        length -= len(block)


def part_records(staging: Path, numbers) -> list[dict]:
    """The trajectory records of complete parts `numbers` (e.g. an earlier stage's)."""
    records = []
    for number in numbers:
        with open(part_path(staging, number, "jsonl")) as handle:
            records.extend(json.loads(line) for line in handle)
    return records
