"""The seams hold: only the TransformerLens backend imports transformer_lens or names its hook
points; figures/, theory/ and analysis/ import no torch; probes/ and analysis/ do not import
each other in a circle (probes never import analysis)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

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
