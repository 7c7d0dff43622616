"""The claims table on disk (figures/claims.json) and in the documents, each rendered from the
claims alone: the README's verdict table (rsp_probe.claims.verdicts), docs/results.md's full
list and docs/theory.md's comparison, one bullet per claim with its id in an HTML comment, so
a checker can tell which sentence states which number. No torch."""

from __future__ import annotations

import json
import re
from pathlib import Path

from rsp_probe.analysis.theory_report import BEGIN, END, replace_generated, split_at_markers
from rsp_probe.analysis.windows import EARLY, LATE_LAST, MIDDLE
from rsp_probe.claims.catalog import families
from rsp_probe.claims.core import ClaimsTable
from rsp_probe.theory.calibration import MIN_ACCEPTANCE, MIN_POWER

CLAIMS_FILE = "claims.json"
RESULTS_MARKERS = ("<!-- BEGIN GENERATED RESULTS -->", "<!-- END GENERATED RESULTS -->")
VERDICT_MARKERS = ("<!-- BEGIN GENERATED VERDICTS -->", "<!-- END GENERATED VERDICTS -->")
THEORY_MARKERS = (BEGIN, END)
BULLET = re.compile(r"^- (?P<sentence>.*) <!-- (?P<id>[^ ]+) -->$")


def write_claims(table: ClaimsTable, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(table.to_dict(), indent=1, ensure_ascii=False) + "\n")
    return path


RUNS_DIR = "figures/runs"  # where the evidence behind the documents is kept


def _preamble() -> list[str]:
    return [f"Every sentence below is a claim computed from the reproduce runs kept in "
            f"{RUNS_DIR}/ (`rsp-probe claims --runs {RUNS_DIR} --update-docs`); "
            "figures/claims.json gives each one's id (in the comment after it), the runs it "
            "reads, its statistic and its value with the 95% CI (a bootstrap over prompts). "
            "Windows, fixed in rsp_probe/analysis/windows.py before any result was seen: "
            f"early = steps {EARLY[0]}-{EARLY[1]}, middle = steps {MIDDLE[0]}-{MIDDLE[1]}, "
            f"late = the last {LATE_LAST} steps of each trajectory. Claims are stated whatever "
            "they show, nulls and contradictions of the paper included.", ""]


# where each document finds the figures, relative to its own folder
FIGURES_FROM = {"verdicts": "figures", "results": "../figures"}
HEADLINE_FIGURE = "mechanism"
CAPTION_SUFFIX = ".caption.md"  # as rsp_probe.figures.render writes them


def _figure(folder: Path | None, link: str, name: str) -> list[str]:
    """A figure with its generated caption, or nothing when it was not drawn."""
    if folder is None or not (folder / f"{name}{CAPTION_SUFFIX}").exists():
        return []
    text = (folder / f"{name}{CAPTION_SUFFIX}").read_text(encoding="utf-8").strip()
    return [f"![{name}]({link}/{name}.png)", "", f"*{name}.png*: {text}", ""]


def _gallery(folder: Path | None, link: str) -> list[str]:
    from rsp_probe.figures import FIGURE_NAMES

    lines = []
    for name in dict.fromkeys([HEADLINE_FIGURE, *FIGURE_NAMES]):
        lines += _figure(folder, link, name)
    return ["## Figures", "", *lines] if lines else []


def render(table: ClaimsTable, document: str, figures: Path | None = None) -> str:
    """The generated Markdown of `document` ("verdicts", "results" or "theory") from the
    claims alone, and, for the README and docs/results.md, the figures' generated captions
    found in `figures` (the folder `rsp-probe figures` wrote)."""
    if document == "verdicts":
        from rsp_probe.claims.verdicts import render_table

        head = _figure(figures, FIGURES_FROM[document], HEADLINE_FIGURE)
        return "\n".join(head) + ("\n" if head else "") + render_table(table)
    documents = {f.name: f.document for f in families()}
    lines = _preamble()
    if document == "theory":
        lines += ["A comparison is called a test only where a simulation at the committed run "
                  f"sizes accepts at least {MIN_ACCEPTANCE:g} of the data that follow the "
                  f"theory and rejects at least {MIN_POWER:g} of each named alternative "
                  "(rsp_probe/theory/calibration.py); otherwise it is a consistency check.", ""]
    claims = [c for c in table.claims if documents[c.family] == document]
    for section in dict.fromkeys(c.section for c in claims):
        lines += [f"### {section}", ""]
        lines += [f"- {c.sentence} <!-- {c.id} -->" for c in claims if c.section == section]
        lines.append("")
    missing = [f"{name} (no run {', '.join(runs)})" for name, runs in table.missing.items()
               if documents[name] == document]
    if missing:
        lines += ["Not measured, their runs are missing: " + "; ".join(missing) + ".", ""]
    lacking = [what for name, whats in table.unmeasured.items() if documents[name] == document
               for what in whats]
    if lacking:
        lines += ["Not measured, their runs lack the data: " + "; ".join(lacking) + ".", ""]
    if document == "results":
        lines += _gallery(figures, FIGURES_FROM[document])
    return "\n".join(lines).rstrip() + "\n"


def figures_for(path: Path, document: str) -> Path | None:
    """The figures folder a document at `path` links to (None for docs/theory.md)."""
    link = FIGURES_FROM.get(document)
    return None if link is None else Path(path).parent / link


TRAIN_RL_MARKERS = ("<!-- BEGIN GENERATED TRAIN-RL -->", "<!-- END GENERATED TRAIN-RL -->")
DOCUMENTS = {"verdicts": VERDICT_MARKERS, "results": RESULTS_MARKERS, "theory": THEORY_MARKERS,
             "train-rl": TRAIN_RL_MARKERS}  # docs/train-rl.md


def update_documents(table: ClaimsTable, paths: dict[str, Path]) -> None:
    """Write each document's generated section (every file's markers are checked first, so
    a bad file leaves all of them as they were). `paths`: document -> file."""
    for document, path in paths.items():
        split_at_markers(path, *DOCUMENTS[document])
    for document, path in paths.items():
        replace_generated(path, render(table, document, figures_for(path, document)),
                          *DOCUMENTS[document])


def generated_section(path: Path, markers: tuple[str, str]) -> str:
    head, tail = split_at_markers(path, *markers)
    document = Path(path).read_text(encoding="utf-8")
    return document[len(head) + len(markers[0]):len(document) - len(tail) - len(markers[1])]


def check_document(table: ClaimsTable, path: Path, document: str) -> list[str]:
    """Problems, one line each, with the generated section of `path`: a claim sentence that
    differs from its recomputed claim, an id the table lacks, or any other line that differs
    from what the claims render to. Empty when the document states exactly the claims."""
    claims = table.by_id()
    found = generated_section(path, DOCUMENTS[document]).strip("\n").splitlines()
    expected = render(table, document, figures_for(path, document)).strip("\n").splitlines()
    problems = []
    for line in found:
        match = BULLET.match(line)
        if match is None:
            continue
        claim = claims.get(match["id"])
        if claim is None:
            problems.append(f"{path}: no claim {match['id']} in the claims table")
        elif match["sentence"] != claim.sentence:
            problems.append(f"{path}: claim {claim.id} reads {match['sentence']!r}; its runs "
                            f"give {claim.sentence!r}")
    if not problems and found != expected:
        number, line = next(((i, a) for i, (a, b) in enumerate(zip(found, expected), 1)
                             if a != b), (min(len(found), len(expected)) + 1, "(end)"))
        problems.append(f"{path}: generated line {number} differs from the claims: {line[:80]}")
    return problems
