"""Import hygiene, read from the AST: no import circle inside sevkit/ (function-level and
TYPE_CHECKING imports included), and no private name (``_x``) used outside its own package."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SEVKIT = REPO / "sevkit"
LAYERS = ("sevkit", "fixtures", "suites", "benchmarks")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SEVKIT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in SEVKIT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        out: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                # "from pkg import mod" names a module when pkg.mod is one; else the names live in pkg.
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            else:
                continue
            out |= {t for t in targets if t in files and t != name}
        graph[name] = out
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_in_sevkit() -> None:
    graph = _graph()
    assert graph.get("sevkit.host.grader"), "the walk found no imports"
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    """SYNTHETIC graph: a -> b -> c -> a plus a leaf d."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}) == [["a", "b", "c"]]


def _private_uses_across_packages() -> list[str]:
    """``from pkg.mod import _x`` or ``mod._x`` where mod lives in another package than the user."""
    found: list[str] = []
    for layer in LAYERS:
        for path in sorted((REPO / layer).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            package = ".".join(parts[:-1])
            tree = ast.parse(path.read_text(), str(path))
            modules: dict[str, str] = {}    # local alias -> module it names
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom):
                    base = node.module or ""
                    if node.level:
                        anchor = parts[:-1][: len(parts) - node.level]
                        base = ".".join([*anchor, *([base] if base else [])])
                    home = base if (REPO / base.replace(".", "/")).is_dir() else base.rpartition(".")[0]
                    for a in node.names:
                        if a.name.startswith("_") and not a.name.startswith("__") and home != package:
                            found.append(f"{path.relative_to(REPO)}: from {base} import {a.name}")
                        modules[a.asname or a.name] = f"{base}.{a.name}"
                elif isinstance(node, ast.Import):
                    for a in node.names:
                        modules[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            for node in ast.walk(tree):
                if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                        and node.attr.startswith("_") and not node.attr.startswith("__")
                        and node.value.id in modules and modules[node.value.id].startswith(LAYERS)
                        and modules[node.value.id].rpartition(".")[0] != package):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_no_private_name_used_across_packages() -> None:
    assert _private_uses_across_packages() == []


def test_no_test_module_imports_another() -> None:
    """Self-test helpers live in tests/helpers/; a test module never imports a test module."""
    bad: list[str] = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        if "data" in path.relative_to(REPO / "tests").parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad += [f"{path.relative_to(REPO)}: {n}" for n in names
                    if any(part.startswith("test_") or part in ("unit", "plugin", "integration")
                           for part in n.split("."))]
    assert bad == []
