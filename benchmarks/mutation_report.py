"""Summarise the last `mutmut run` (the mutants/ directory) as markdown: the score per module
and overall, and every surviving mutant with its diff, for benchmarks/MUTATION.md.

    python benchmarks/mutation_report.py            # prints the markdown
    python benchmarks/mutation_report.py --update   # rewrites the generated block of MUTATION.md
    python benchmarks/mutation_report.py --diffs    # each survivor with its diff (slow)

Score = killed / (killed + survived + timeout + suspicious); "no tests" (a function no selected
fast test calls) and "not checked" mutants are listed separately, never counted as killed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTATION_MD = ROOT / "benchmarks" / "MUTATION.md"
BEGIN, END = "<!-- BEGIN MUTATION RESULTS -->", "<!-- END MUTATION RESULTS -->"
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests",
          34: "skipped", 36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout",
          255: "timeout", 37: "killed", None: "not checked"}
SCORED = ("killed", "survived", "timeout", "suspicious")


def statuses(mutants: Path) -> dict[str, str]:
    """mutant name -> status, over every .meta file mutmut wrote."""
    out = {}
    for meta in sorted(mutants.rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        out.update({name: STATUS.get(code, "suspicious") for name, code in codes.items()})
    return out


def module_of(name: str) -> str:
    return name.rsplit(".", 1)[0]


def diff_of(name: str) -> str:
    result = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    return result.stdout.strip() or result.stderr.strip()


def function_of(name: str) -> str:
    """rsp_probe.m.x_fn__mutmut_3 -> rsp_probe.m.fn (methods keep their class: C.fn)."""
    module, mangled = name.rsplit(".", 1)
    return f"{module}.{mangled[2:].rsplit('__mutmut_', 1)[0].replace(chr(0x01C1), '.').strip('.')}"


def report(mutants: Path, with_diffs: bool = False) -> str:
    by_name = statuses(mutants)
    rows = ["| module | killed | survived | timeout | no tests | not run | score |",
            "|---|---|---|---|---|---|---|"]
    total = Counter()
    for module in sorted({module_of(n) for n in by_name}):
        counts = Counter(s for n, s in by_name.items() if module_of(n) == module)
        total.update(counts)
        rows.append(_row(module, counts))
    rows.append(_row("**all**", total))
    lines = [*rows, ""]
    survivors = [n for n, s in by_name.items() if s in SCORED and s != "killed"]
    lines.append(f"Mutants not killed: {len(survivors)}.")
    for name in survivors:
        if with_diffs:
            lines += ["", f"#### `{name}` ({by_name[name]})", "", "```diff", diff_of(name), "```"]
        else:
            lines.append(f"- `{name}` ({by_name[name]})")
    untested = Counter(function_of(n) for n, s in by_name.items() if s == "no tests")
    if untested:
        lines += ["", "Functions no selected fast test calls (their mutants are not scored):"]
        lines += [f"- `{fn}`: {count}" for fn, count in sorted(untested.items())]
    return "\n".join(lines)


def _row(module: str, counts: Counter) -> str:
    scored = sum(counts[s] for s in SCORED)
    score = f"{100 * counts['killed'] / scored:.1f}%" if scored else "-"
    return (f"| {module} | {counts['killed']} | {counts['survived']} | {counts['timeout']} | "
            f"{counts['no tests']} | {counts['not checked']} | {score} |")


def main(argv: list[str]) -> int:
    mutants = ROOT / "mutants"
    if not mutants.is_dir():
        print("no mutants/ directory: run `make mutate` first", file=sys.stderr)
        return 2
    text = report(mutants, with_diffs='--diffs' in argv)
    if "--update" not in argv:
        print(text)
        return 0
    page = MUTATION_MD.read_text()
    head, _, rest = page.partition(BEGIN)
    _, _, tail = rest.partition(END)
    MUTATION_MD.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
