"""Run directories written by tests with values chosen by hand, so that every number an
analysis or figure reports from them is known in advance (no model involved)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rsp_probe.runs import RunWriter, open_run


def record(condition: str, prompt_id: str, sample: int, *, correct=None, answer=None,
           rsp_tokens: int = 0, text: str = "") -> dict:
    """One trajectory record with the fields the analyses read."""
    return {"id": f"{condition}/{prompt_id}/{sample}", "prompt_id": prompt_id,
            "condition": condition, "sample": sample, "rsp_tokens": rsp_tokens,
            "temperature": 0.7, "text": text, "answer": answer, "correct": correct,
            "generated_token_ids": [1, 2, 3], "prompt_token_ids": [4, 5], "rsp_positions": []}


def write_run(out: Path, config: dict, records: list[dict],
              steps: dict[str, dict[str, np.ndarray]] | None = None, tables=None):
    """A complete run directory (DONE written) holding exactly these records and steps."""
    writer = RunWriter(out, config)
    rsp = {r["id"]: np.zeros((r["rsp_tokens"], 4), dtype=np.float32) for r in records}
    steps = steps or {r["id"]: {"entropy": np.zeros(1, dtype=np.float32)} for r in records}
    writer.write_trajectories(records, rsp, steps)
    for name, frame in (tables or {}).items():
        writer.write_table(name, frame)
    writer.finish({"device": "cpu"})
    return open_run(out)


def counts_run(out: Path, counts: dict[str, list[int]], n: dict[str, int],
               prompt_order: list[int] | None = None, config=None, tables=None):
    """A sampling run where condition `name` has counts[name][j] correct of n[name] samples on
    problem j. Records are written in `prompt_order` (problem indices), so a reader that
    pairs problems by position rather than by id gets them wrong."""
    n_problems = len(next(iter(counts.values())))
    order = prompt_order or list(range(n_problems))
    records = []
    for name, per_problem in counts.items():
        for j in order:
            for sample in range(n[name]):
                right = sample < per_problem[j]
                records.append(record(name, f"p{j:02d}", sample, correct=right,
                                      answer=str(j if right else 1000 + sample)))
    return write_run(out, {"command": "passk", **(config or {})}, records, tables=tables)
