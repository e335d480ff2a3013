"""builder's modules import each other without cycles, imports inside functions included.

An import inside a function hides a cycle from Python but not from a reader; this reads
every import statement of every module, wherever it sits, and looks for a cycle. Not
modelled: importlib.import_module by name (the CLI's lazy commands, build's backends)
and a package's __init__ running before its submodules.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "builder"


def _module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path) -> dict[str, set[str]]:
    """Each module of the package -> the package's modules it imports, anywhere in its code."""
    modules = {_module_name(path, package): path for path in package.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from a.b import c` imports the module a.b.c when there is one, else names of a.b.
                imported = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                            for a in node.names]  # fmt: skip
            else:
                continue
            graph[name] |= {target for target in imported if target in modules and target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while (member := stack.pop()) != node:
                component.append(member)
            if component:
                found.append(sorted([node, *component]))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_builder_has_no_import_cycle() -> None:
    graph = import_graph(PACKAGE)
    assert {"builder.verify", "builder.verify.image", "builder.images", "builder.store"} <= set(graph)
    assert cycles(graph) == []


def test_the_check_finds_a_cycle_hidden_inside_a_function(tmp_path: Path) -> None:
    package = tmp_path / "builder"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from builder.b import thing\n")
    (package / "b.py").write_text("def thing():\n    from builder import a\n    return a\n")
    (package / "c.py").write_text("import builder.a\n")
    assert cycles(import_graph(package)) == [["builder.a", "builder.b"]]
