"""The package's import graph, read from its source (no module is imported): which module
imports which, with imports inside functions counted (a lazy import is still a dependency)
and those under `if TYPE_CHECKING:` left out (annotations only, never executed).

    graph = import_graph(Path("rsp_probe"))
    upward_imports(graph, LAYERS)   # [(importer, imported)] that run up the layers
    cycles(graph)                   # [[modules in one cycle], ...]
"""

from __future__ import annotations

import ast
from pathlib import Path


def module_names(package: Path) -> dict[str, Path]:
    """Every module of `package` by dotted name (a package by its own name)."""
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        names[name] = path
    return names


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skipped |= {id(n) for n in ast.walk(child)}
    return skipped


def _imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The dotted names an import statement may load: for `from a import b`, both a.b
    (when b is a module) and a."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        parent = module.split(".")
        parent = parent if is_package else parent[:-1]
        parent = parent[:len(parent) - node.level + 1]
        base = ".".join(parent + ([base] if base else []))
    return [f"{base}.{alias.name}" for alias in node.names] + [base]


def import_graph(package: Path) -> dict[str, set[str]]:
    """module -> the package's modules it imports. `from a import b` counts a.b when b is a
    module, else a; a submodule's own parent packages are not counted (Python runs them
    first whatever the submodule imports)."""
    names = module_names(package)
    graph: dict[str, set[str]] = {name: set() for name in names}
    for name, path in names.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            targets = _imported(node, name, path.name == "__init__.py")
            if isinstance(node, ast.ImportFrom):
                as_modules = [t for t in targets[:-1] if t in names]
                targets = as_modules if len(as_modules) == len(targets) - 1 else targets[-1:]
            for target in targets:
                while target and target not in names:  # a name inside a module
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def layer_of(module: str, layers: list[list[str]]) -> int | None:
    """The layer of the most specific unit naming `module` ("pkg.sub" before "sub"); units
    are relative to the top package, and the top package itself is the unit ""."""
    relative = module.partition(".")[2]
    best, best_length = None, -1
    for index, units in enumerate(layers):
        for unit in units:
            if (relative == unit or relative.startswith(unit + ".") or unit == "") and \
                    len(unit) > best_length:
                best, best_length = index, len(unit)
    return best


def upward_imports(graph: dict[str, set[str]], layers: list[list[str]]) -> list[tuple]:
    return sorted((a, b) for a, targets in graph.items() for b in targets
                  if layer_of(b, layers) > layer_of(a, layers))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found
