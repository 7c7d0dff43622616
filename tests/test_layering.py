"""The seams hold: only the TransformerLens backend imports transformer_lens or names its hook
points; figures/, theory/ and analysis/ import no torch; the package's layers import only
downward and no module imports itself through others (tests/import_graph.py reads the graph
from the source, lazy imports included)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from import_graph import cycles, import_graph, layer_of, upward_imports

PACKAGE = Path(__file__).parent.parent / "rsp_probe"
TL_BACKEND = PACKAGE / "backends" / "transformer_lens.py"
HOOK_NAMES = re.compile(r"hook_(pattern|attn_scores|resid|embed|q|k|v|z)\b|blocks\.\{?")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _sources():
    return sorted(PACKAGE.rglob("*.py"))


def test_only_the_tl_backend_imports_or_names_transformer_lens():
    for path in _sources():
        if path == TL_BACKEND:
            continue
        imported = {name.split(".")[0] for name in _imports(path)}
        assert "transformer_lens" not in imported, path
        code = "\n".join(line for line in path.read_text().splitlines()
                         if not line.lstrip().startswith("#"))
        assert not HOOK_NAMES.search(code), (path, HOOK_NAMES.search(code).group(0))


def test_analysis_claims_figures_theory_import_no_torch():
    for folder in ("analysis", "claims", "figures", "theory"):
        for path in (PACKAGE / folder).rglob("*.py"):
            imported = {name.split(".")[0] for name in _imports(path)}
            assert not imported & {"torch", "transformer_lens", "transformers"}, path


def test_probes_never_import_analysis():
    for path in (PACKAGE / "probes").rglob("*.py"):
        assert not any(name.startswith("rsp_probe.analysis") for name in _imports(path)), path


# ---- the house without circles: layers import only downward, no module imports in a cycle

# Bottom to top; a unit is a module or package below rsp_probe ("" is rsp_probe itself).
# docs/architecture.md draws the same picture (test_the_architecture_page_draws_these_layers).
LAYERS = [
    ["errors", "_version", "progress", "key_groups", "registry"],  # foundations
    ["config", "validation", "cli_options"],  # options and their checks
    ["theory", "tasks"],  # pure maths; prompts, datasets, grading
    ["runio", "runs"],  # storage: kinds of files, never an experiment
    ["backends", "models", "preflight"],  # loading and running a model
    ["laws", "rsp", "controls", "soft_prompts"],  # what is injected, and where
    ["interventions", "probes", "sampler"],  # the decoding loop and what it records
    ["analysis"],  # statistics over saved runs
    ["figures", "claims", "rl", "soft_prompts.train"],  # from runs to pictures and sentences
    ["experiments", "toy"],  # the registered experiments (and the default model's making)
    ["cli", "api", ""],  # the doors: command line, Python API, the package's names
]


def test_every_module_has_a_layer():
    graph = import_graph(PACKAGE)
    assert [m for m in graph if layer_of(m, LAYERS) is None] == []


def test_no_layer_imports_a_layer_above_it():
    upward = upward_imports(import_graph(PACKAGE), LAYERS)
    assert upward == [], "\n".join(f"{a} imports {b}" for a, b in upward)


def test_no_module_imports_itself_through_others():
    found = cycles(import_graph(PACKAGE))
    assert found == [], "\n".join(" -> ".join(c) for c in found)


def test_the_graph_sees_lazy_imports_cycles_and_upward_edges(tmp_path):
    """The checks above can fail: a made-up package with a lazy upward import, a cycle
    through a `from . import` and a TYPE_CHECKING import (which must not count)."""
    package = tmp_path / "pkg"
    (package / "low").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "low" / "__init__.py").write_text("")
    (package / "low" / "a.py").write_text("def f():\n    from pkg.high import g\n")
    (package / "low" / "b.py").write_text("from pkg.low import a\n")
    (package / "low" / "c.py").write_text("from . import b\nimport pkg.low.a\n")
    (package / "low" / "d.py").write_text("from typing import TYPE_CHECKING\n"
                                          "if TYPE_CHECKING:\n    from pkg.high import g\n")
    (package / "high.py").write_text("from pkg.low.c import x\ndef g(): pass\n")
    graph = import_graph(package)
    layers = [["low"], ["high"]]
    assert upward_imports(graph, layers) == [("pkg.low.a", "pkg.high")]
    assert cycles(graph) == [["pkg.high", "pkg.low.a"]] or cycles(graph) == [
        ["pkg.high", "pkg.low.a", "pkg.low.b", "pkg.low.c"]]
    assert graph["pkg.low.d"] == set() and graph["pkg.low.b"] == {"pkg.low.a"}


def test_the_architecture_page_draws_these_layers():
    page = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = page.split("<!-- layers -->")[1].split("<!-- /layers -->")[0]
    drawn = [line.split("|")[1].split() for line in block.strip().splitlines()[2:]]
    expected = [[unit or "rsp_probe" for unit in layer] for layer in reversed(LAYERS)]
    assert drawn == expected
