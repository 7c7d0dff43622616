"""`rsp-probe merge`: the runs of `--shard 0/N` ... `--shard N-1/N` joined into the run a
single process would have written (same trajectories in the same order, same vectors and
step values; derived files recomputed over the whole). No model is needed.

Shard I holds prompts I, I+N, I+2N, ... (rsp_probe.experiments.common.shard_problems), and
within a shard a prompt's trajectories are contiguous, so a trajectory's place in the whole
run is (the global position of its prompt, its line within the shard); for runs written
condition by condition (order "condition": knockout, dose) it is (the condition's block, the
prompt's global position, the line).

Storage knows no experiment: what a run's experiment adds (its trajectory order, the files it
derives, its figure) comes in as parameters (rsp_probe.experiments.distributed.merge_shards
passes the registered experiment's).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rsp_probe.errors import UsageError
from rsp_probe.runio.parts import merge_parquet, merge_safetensors
from rsp_probe.runs import (
    EXECUTION_KEYS,
    RSP_FILE,
    STEPS_FILE,
    TRAJECTORIES_FILE,
    Run,
    RunWriter,
    open_run,
)


def _shard_of(run: Run) -> tuple[int, int]:
    from rsp_probe.config import parse_shard

    shard = parse_shard(run.config.get("shard"))
    if shard is None:
        raise UsageError(f"{run.path}: not a shard (it was run without --shard)")
    return shard


def check_shards(runs: list[Run]) -> list[Run]:
    """All N shards of one configuration, each once; sorted by shard index."""
    shards = {}
    for run in runs:
        index, count = _shard_of(run)
        if index in shards:
            raise UsageError(f"{run.path}: shard {index}/{count} given twice")
        shards[index] = run
    count = _shard_of(runs[0])[1]
    if {_shard_of(r)[1] for r in runs} != {count} or sorted(shards) != list(range(count)):
        raise UsageError(f"merge needs shards 0..N-1 of one N; got "
                         f"{', '.join(r.config['shard'] for r in runs)}")
    ignored = {*EXECUTION_KEYS, "shard", "schema_version"}
    first = runs[0].config
    for run in runs[1:]:
        changed = sorted(k for k in {*first, *run.config} - ignored
                         if first.get(k) != run.config.get(k))
        if changed:
            raise UsageError(f"{run.path}: not a shard of the same run as {runs[0].path} "
                             f"(differs in {', '.join(changed)})")
    return [shards[i] for i in range(count)]


def _prompt_positions(shards: list[Run]) -> dict[str, int]:
    """Each prompt's position in the single-process run: prompt p of shard I is I + p*N."""
    positions: dict[str, int] = {}
    for shard_index, run in enumerate(shards):
        local: dict[str, int] = {}
        for record in run.records():
            prompt = record["prompt_id"]
            if prompt not in local:
                local[prompt] = len(local)
                positions[prompt] = shard_index + local[prompt] * len(shards)
    return positions


def _line_index(shards: list[Run], by_condition: bool) -> list[tuple]:
    """(block, global prompt position, line in shard, shard) per trajectory; the block is
    the condition's rank when the run is condition-major, else 0."""
    positions, index, ranks = _prompt_positions(shards), [], {}
    for shard_index, run in enumerate(shards):
        for line_number, record in enumerate(run.records()):
            condition = record["condition"]
            block = ranks.setdefault(condition, len(ranks)) if by_condition else 0
            index.append((block, positions[record["prompt_id"]], line_number, shard_index))
    return sorted(index)


def _carry_tables(shards: list[Run], writer: RunWriter, by_condition: bool) -> None:
    """Tables a run computed while it ran and that cannot be derived from its trajectories
    (dose's score_shift.parquet): every shard's rows, in the single-process order when they
    name their prompt (and condition). Derived tables written here are recomputed after."""
    import pandas as pd

    positions = _prompt_positions(shards)
    for name in shards[0].files():  # those its DONE lists, never a stray file beside them
        if not name.endswith(".parquet") or "/" in name or name == STEPS_FILE:
            continue
        frames = [run.table(name).assign(_shard=i) for i, run in enumerate(shards)]
        frame = pd.concat(frames, ignore_index=True)
        if "prompt_id" in frame.columns:
            ranks = (frame["condition"].map({c: i for i, c in enumerate(
                frame["condition"].unique())}) if by_condition and "condition" in frame else 0)
            frame = frame.assign(_block=ranks, _prompt=frame["prompt_id"].map(positions),
                                 _row=frame.groupby("_shard").cumcount())
            frame = frame.sort_values(["_block", "_prompt", "_row"], kind="stable")
        columns = [c for c in frame.columns if not c.startswith("_")]
        writer.write_table(name, frame[columns].reset_index(drop=True))


def _write_trajectories(shards: list[Run], target: Path, by_condition: bool) -> None:
    """The shards' lines, byte for byte, in the single-process order."""
    lines = [run.read_bytes(TRAJECTORIES_FILE).splitlines(keepends=True) for run in shards]
    with open(target, "wb") as out:
        for *_, line_number, shard in _line_index(shards, by_condition):
            out.write(lines[shard][line_number])


def write_derived_files(writer: RunWriter, derive: Callable[[Run], dict[str, Any]] | None
                        ) -> None:
    """The files `derive` computes from the staged run's trajectories ({name: table or JSON}),
    written into it; nothing when there is no `derive`."""
    if derive is not None:
        writer.write_derived(derive(writer.staged_run()))


def merge_runs(paths: list[str | Path], out: str | Path, overwrite: bool = False,
               lock=None, execution: dict | None = None, order: str = "prompt",
               derive: Callable[[Run], dict[str, Any]] | None = None,
               finish_staged: Callable[[Run], None] | None = None) -> Run:
    """`execution`: how the merged run was made (EXECUTION_KEYS), recorded in its config in
    place of the first shard's; `lock`: the lock of `out` when the caller holds it. `order`
    ("prompt" or "condition"), `derive` (files computed from the trajectories, recomputed over
    the whole) and `finish_staged` (e.g. draw the run's figure into it) are the run's
    experiment's."""
    shards = check_shards([open_run(path) for path in paths])
    config = {key: value for key, value in shards[0].config.items() if key != "schema_version"}
    config.update(execution or {})
    config.update(shard=None, out=str(out))
    writer = RunWriter(Path(out), config, overwrite=overwrite, lock=lock)
    try:
        by_condition = order == "condition"
        _write_trajectories(shards, writer.staging / TRAJECTORIES_FILE, by_condition)
        _carry_tables(shards, writer, by_condition)
        merge_safetensors([run.read_bytes(RSP_FILE) for run in shards],
                          writer.staging / RSP_FILE)
        merge_parquet([run.read_bytes(STEPS_FILE) for run in shards], writer.staging / STEPS_FILE)
        write_derived_files(writer, derive)
        if finish_staged is not None:
            finish_staged(writer.staged_run())
        meta = {key: shards[0].meta.get(key) for key in ("device", "dtype")}
        meta["merged_from"] = [str(run.path) for run in shards]
        return open_run(writer.finish(meta))
    except BaseException as err:
        writer.abort({}, reason=f"{type(err).__name__}: {err}")
        raise
