"""`rsp-probe grade`: re-grade a finished run into a new run directory, or grade a JSONL file.

    rsp-probe grade runs/passk-1 --out runs/passk-1-regraded
    rsp-probe grade answers.jsonl > graded.jsonl     # lines of {"text": ..., "answer": ...}

A run is never re-graded in place: the new run holds the same files, trajectories.jsonl with
fresh `answer`, `correct` and `grade_error` fields, and the tables derived from them (Pass@k,
branching) recomputed. Everything is graded before anything is written, so a checker that
cannot start leaves no new run behind. No torch.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

from rsp_probe.config import DataConfig
from rsp_probe.errors import UsageError
from rsp_probe.registry import EXPERIMENTS
from rsp_probe.runio.merge import write_derived_files
from rsp_probe.runs import (
    CONFIG_FILE,
    DONE_FILE,
    META_FILE,
    TRAJECTORIES_FILE,
    Run,
    RunWriter,
    open_run,
)
from rsp_probe.tasks.grading import grade


def _read_records(run: Run) -> list[dict]:
    return run.records()


def _data_config(config: dict) -> DataConfig:
    names = {f.name for f in dataclasses.fields(DataConfig)}
    return DataConfig(**{k: v for k, v in config.items() if k in names})


def regrade_run(source: Run, out: Path, overwrite: bool = False,
                timeout_s: float = 5.0) -> tuple[Run, list[dict]]:
    """The re-graded copy of `source` at `out`, and the records as they were before."""
    if out.resolve() == source.path.resolve():
        raise UsageError(f"--out {out}: that is the run itself; re-grading writes a new run")
    old = _read_records(source)
    if not any(("text" in r and "reference_answer" in r)
               and (r.get("correct") is not None or r.get("grade_error")) for r in old):
        raise UsageError(f"{source.path}: a {source.command} run has no graded trajectories")
    grades = grade(_data_config(source.config), [r["text"] for r in old],
                   [r["reference_answer"] for r in old], timeout_s=timeout_s,
                   answer_format=source.config.get("prompt", {}).get("answer_format", "####"))
    records = [{**r, "answer": g.answer, "correct": g.correct, "grade_error": g.error}
               for r, g in zip(old, grades)]
    config = {k: v for k, v in source.config.items() if k != "schema_version"}
    writer = RunWriter(out, {**config, "out": str(out), "regraded_from": str(source.path)},
                       overwrite=overwrite)
    try:
        _copy_unchanged(source, writer.staging)
        with open(writer.staging / TRAJECTORIES_FILE, "w") as handle:
            handle.writelines(json.dumps(record) + "\n" for record in records)
        # Pass@k, branching: recomputed from the new verdicts by the run's experiment
        experiment = EXPERIMENTS.entries().get(source.command)
        write_derived_files(writer, experiment.derived_files if experiment else None)
        meta = {key: source.meta.get(key) for key in ("device", "dtype")}
        path = writer.finish({**meta, "regraded_from": str(source.path),
                              "source_git_commit": source.meta.get("git_commit")})
    except BaseException as error:
        writer.abort({}, reason=f"{type(error).__name__}: {error}")
        raise
    return open_run(path), old


def _copy_unchanged(source: Run, staging: Path) -> None:
    """Every file of the run except those re-grading rewrites (derived tables are copied, then
    replaced)."""
    skip = {CONFIG_FILE, META_FILE, DONE_FILE, TRAJECTORIES_FILE}
    for name in source.files():  # those its DONE lists: never a stray file beside them
        if name not in skip:
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_bytes(source.read_bytes(name))


def changes_line(old: list[dict], new: Run) -> str:
    """How the verdicts moved: one line for stderr."""
    frame = new.trajectories
    before = [r.get("correct") for r in old]
    after = frame["correct"].tolist()
    changed = sum(a is not None and b is not None and bool(a) != bool(b)
                  for b, a in zip(before, after))
    now_ungraded = int(frame["grade_error"].notna().sum())
    return (f"re-graded {len(frame)} trajectories: {changed} changed verdict, "
            f"{now_ungraded} could not be graded")


def read_answer_file(path: Path) -> list[dict]:
    """The lines of a JSONL file of {"text": str, "answer": str} objects."""
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as error:
        raise UsageError(f"{path}: not UTF-8 text (byte {error.start}); JSONL is UTF-8") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise UsageError(f"{path}:{number}: not JSON ({error.msg})") from None
        if not (isinstance(row, dict) and isinstance(row.get("text"), str)
                and isinstance(row.get("answer"), str)):
            raise UsageError(f'{path}:{number}: expected {{"text": str, "answer": str}}')
        rows.append(row)
    if not rows:
        raise UsageError(f"{path}: no lines to grade")
    return rows


def grade_file(path: Path, timeout_s: float = 5.0) -> list[dict]:
    """Each line with `extracted`, `correct` and `grade_error` added (dataset grading)."""
    from rsp_probe.tasks.mathcheck import grade_texts

    rows = read_answer_file(path)
    checks = grade_texts([(r["answer"], r["text"]) for r in rows], timeout_s=timeout_s)
    return [{**r, "extracted": c.answer, "correct": c.correct, "grade_error": c.error}
            for r, c in zip(rows, checks)]


def file_summary(rows: list[dict]) -> str:
    failed = sum(r["grade_error"] is not None for r in rows)
    right = sum(r["correct"] is True for r in rows)
    line = (f"graded {len(rows) - failed} of {len(rows)} lines: {right} correct, "
            f"{len(rows) - failed - right} incorrect")
    if failed:
        line += f"; warning: {failed} could not be graded (grade_error says why)"
    return line


def grade_command(path: str, out: str | None, overwrite: bool, timeout_s: float) -> int:
    """The `rsp-probe grade` command: a run directory or a .jsonl file."""
    from rsp_probe.analysis.summaries import describe

    target = Path(path)
    if not math.isfinite(timeout_s) or timeout_s <= 0:  # nan passes `<= 0`; inf never ends
        raise UsageError(f"--timeout must be positive, got {timeout_s}")
    if target.is_dir():
        source = open_run(target)
        new, old = regrade_run(source, Path(out or f"{target}-regraded"), overwrite, timeout_s)
        print(describe(new))
        print(f"\n{changes_line(old, new)}\nrun written to {new.path}", file=sys.stderr)
        return 0
    if not target.is_file():
        raise UsageError(f"{target}: no such run directory or file")
    if out and Path(out).exists() and (not overwrite or Path(out).resolve() == target.resolve()):
        raise UsageError(f"--out {out}: exists (use --overwrite; never the input file itself)")
    rows = grade_file(target, timeout_s)
    lines = "".join(json.dumps(row) + "\n" for row in rows)
    if out:
        Path(out).write_text(lines)
    else:
        sys.stdout.write(lines)
    print(file_summary(rows), file=sys.stderr)
    return 0

