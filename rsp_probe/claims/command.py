"""`rsp-probe claims`: the claims table from saved runs, written to figures/claims.json and,
with --update-docs, into the README (the verdict table), docs/results.md (every claim) and
docs/theory.md; --check compares the documents with
the recomputed claims instead of writing them. No torch."""

from __future__ import annotations

import sys
from pathlib import Path

from rsp_probe.claims.catalog import compute_claims
from rsp_probe.claims.core import ClaimsTable
from rsp_probe.claims.documents import (
    DOCUMENTS,
    check_document,
    update_documents,
    write_claims,
)
from rsp_probe.errors import UsageError

# the README holds the verdict table; docs/results.md every claim; docs/theory.md the theory's;
# docs/train-rl.md the training experiment's
DOCUMENT_PATHS = {"verdicts": Path("README.md"), "results": Path("docs/results.md"),
                  "theory": Path("docs/theory.md"), "train-rl": Path("docs/train-rl.md")}


def plan_runs(runs_dir) -> dict:
    """The completed runs of `runs_dir` that the reproduce plan names (others are not the
    evidence of any claim and are left alone), by name."""
    from rsp_probe.registry import reproduce_plan
    from rsp_probe.runs import find_runs

    names = {name for name, _, _ in reproduce_plan()}
    runs = {run.id: run for run in find_runs([runs_dir]) if run.id in names}
    if not runs:
        raise UsageError(f"{runs_dir}: no completed run of the reproduce plan")
    return runs


def claims_from(runs_dir) -> ClaimsTable:
    return compute_claims(plan_runs(runs_dir))


def run_claims(runs_dir, out, update_docs: bool = False, check: bool = False,
               paths: dict | None = None) -> int:
    """Compute, write and (optionally) render or check; the exit code: 1 when --check finds a
    document that no longer states its claims."""
    from rsp_probe.analysis.theory_report import split_at_markers

    paths = paths or DOCUMENT_PATHS
    if update_docs or check:
        for document, path in paths.items():
            split_at_markers(path, *DOCUMENTS[document])  # say so before the work
    table = claims_from(runs_dir)
    if check:
        problems = [p for document, path in paths.items()
                    for p in check_document(table, path, document)]
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{len(table.claims)} claims; {len(problems)} problems")
        return 1 if problems else 0
    write_claims(table, out)
    for claim in table.claims:
        print(f"{claim.id}: {claim.sentence}")
    for family, runs in table.missing.items():
        print(f"not computed: {family} (no run {', '.join(runs)})", file=sys.stderr)
    for family, whats in table.unmeasured.items():
        print(f"not measured: {family}: {'; '.join(whats)}", file=sys.stderr)
    if update_docs:
        update_documents(table, paths)
        print(f"written into {', '.join(map(str, paths.values()))}", file=sys.stderr)
    print(f"claims table: {out}", file=sys.stderr)
    return 0
