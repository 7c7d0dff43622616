"""The evidence behind the documents, kept in the repository: each reproduce run compacted to
what the claims and figures read (config, meta, trajectories, steps and the run's own tables),
as an ordinary run directory that `open_run` checks against its own DONE. What is left out is
regenerable: the RSP vectors (drawn from the seeds in trajectories.jsonl) and the per-run
figure files (`rsp-probe figures`). steps.parquet is rewritten losslessly (zstd, float bytes
split by stream: about 40% smaller); its content digest, equal to the original's, is checked on
writing and by check_evidence. Every other kept file is the run's, byte for byte.
EVIDENCE.json keeps the original DONE, so the sha256 of every file the full run had, left-out
and rewritten ones included, can still be checked after a rerun."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from rsp_probe.runio.integrity import file_digest, run_files, verify, write_manifest
from rsp_probe.runs import RSP_FILE, SCHEMA_VERSION, STEPS_FILE, open_run

EVIDENCE_FILE = "EVIDENCE.json"
FIGURE_PREFIX = "figure-"  # the per-run figure files of write_derived


def left_out(name: str) -> bool:
    """Files of a full run the evidence does without (all regenerable)."""
    return name == RSP_FILE or name.startswith(FIGURE_PREFIX)


def compact_run(source: Path, target: Path) -> Path:
    """Copy the completed run `source` into `target` without its regenerable files; `target`
    is replaced. The copied files keep the sha256 the original DONE lists."""
    source, target = Path(source), Path(target)
    run = open_run(source)  # refuses incomplete or damaged runs, in one line
    done = run.snapshot.done  # the DONE the files below were verified against
    staging = target.with_name(f".{target.name}.evidence")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    rewritten = {}
    for name in sorted(done["files"]):
        if left_out(name):
            continue
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        if name == STEPS_FILE:
            rewritten[name] = rewrite_table(run.read_bytes(name), staging / name)
        else:
            (staging / name).write_bytes(run.read_bytes(name))
    record = {"source": str(source), "rewritten": rewritten,
              "left_out": sorted(n for n in done["files"] if left_out(n)),
              "source_done": done}
    (staging / EVIDENCE_FILE).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    write_manifest(staging, SCHEMA_VERSION)
    verify(staging)
    if _same_files(staging, target):  # kept as it was: no new DONE timestamp to commit
        shutil.rmtree(staging)
        return target
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def _same_files(new: Path, old: Path) -> bool:
    """Whether `old` holds the same files as `new`, byte for byte, DONE aside."""
    if not old.is_dir():
        return False
    names = [p.relative_to(new) for p in run_files(new)]
    return names == [p.relative_to(old) for p in run_files(old)] and all(
        (new / name).read_bytes() == (old / name).read_bytes() for name in names)


def _read_table(source):
    """A parquet table from a path or from the verified bytes of an opened run."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pq.read_table(pa.BufferReader(source) if isinstance(source, bytes) else source)


def table_digest(path: Path | bytes) -> str:
    """sha256 of a parquet table's content: column names, types and values (floats by their
    bits, dictionaries decoded), independent of the file's encoding and compression."""
    import hashlib

    import pyarrow as pa

    digest = hashlib.sha256()
    table = _read_table(path)
    for name, column in zip(table.column_names, table.columns):
        column = column.combine_chunks()
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        digest.update(f"{name}:{column.type}:{len(column)};".encode())
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            digest.update("\0".join(column.to_pylist()).encode())
        else:
            digest.update(column.to_numpy(zero_copy_only=False).tobytes())
    return digest.hexdigest()


def rewrite_table(source: Path | bytes, target: Path) -> dict:
    """Write `source` to `target` losslessly in the compact encoding; refuse any change of
    content. Returns the content digest (the same for both files)."""
    import pyarrow.parquet as pq

    pq.write_table(_read_table(source), target, compression="zstd", compression_level=19,
                   use_byte_stream_split=["value"], use_dictionary=["trajectory", "probe"])
    content = table_digest(source)
    if table_digest(target) != content:
        raise ValueError(f"{source}: the compact encoding changed its content")
    return {"content_sha256": content}


def check_evidence(folder: Path) -> None:
    """Raise ValueError when a kept file differs from the original run's: byte for byte, or
    by content for the rewritten tables."""
    folder = Path(folder)
    record = json.loads((folder / EVIDENCE_FILE).read_text())
    for name, entry in record["source_done"]["files"].items():
        if name in record["left_out"]:
            continue
        if name in record["rewritten"]:
            same = table_digest(folder / name) == record["rewritten"][name]["content_sha256"]
        else:
            same = file_digest(folder / name) == entry["sha256"]
        if not same:
            raise ValueError(f"{folder}: {name} differs from the run it was kept from")


def compact_runs(sources: list[Path], target_dir: Path) -> list[Path]:
    """compact_run for each source into target_dir/<run name>."""
    return [compact_run(source, Path(target_dir) / Path(source).name) for source in sources]
