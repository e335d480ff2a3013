"""builder's modules import each other without cycles, and import at the top.

An import inside a function hides a cycle from Python but not from a reader; this reads
every import statement of every module, wherever it sits, and every "builder.x:name"
reference that builder/lazy.py loads late, and looks for a cycle. Not modelled: a
package's __init__ running before its submodules.

To check by hand: `.venv/bin/pytest tests/test_imports.py -v`.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "builder"
# What builder/lazy.py loads: "builder.cli.validate:validate_command".
LAZY_REFERENCE = re.compile(r"^(builder(?:\.\w+)+):\w+$")
# Imported where used, because installing it is optional (the `db` extra).
OPTIONAL_DEPENDENCIES = {"psycopg2", "psycopg2.extensions"}


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
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                reference = LAZY_REFERENCE.match(node.value)
                imported = [reference.group(1)] if reference else []
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
    assert {"builder.verify", "builder.verify.image", "builder.docker.images", "builder.store"} <= set(graph)
    assert cycles(graph) == []


def test_the_check_finds_a_cycle_hidden_inside_a_function(tmp_path: Path) -> None:
    package = tmp_path / "builder"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from builder.b import thing\n")
    (package / "b.py").write_text("def thing():\n    from builder import a\n    return a\n")
    (package / "c.py").write_text("import builder.a\n")
    assert cycles(import_graph(package)) == [["builder.a", "builder.b"]]


def imports_inside_functions(package: Path) -> list[str]:
    """Every import statement in a function body, as "path:line module"."""
    found = []
    for path in sorted(package.rglob("*.py")):
        for function in ast.walk(ast.parse(path.read_text())):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [node.module or "."]
                else:
                    continue
                found += [f"{path.relative_to(package.parent)}:{node.lineno} {name}" for name in names]
    return found


def test_builder_imports_at_the_top_of_its_modules() -> None:
    """Late loading goes through builder/lazy.py's tables; an optional dependency is the one exception."""
    inside = imports_inside_functions(PACKAGE)
    assert [entry for entry in inside if entry.split()[1] not in OPTIONAL_DEPENDENCIES] == []
    assert any(entry.startswith("builder/app/db.py") for entry in inside)


def test_the_check_sees_an_import_in_a_function_and_a_lazy_reference(tmp_path: Path) -> None:
    package = tmp_path / "builder"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text('LATER = {"b": "builder.b:thing"}\n')
    (package / "b.py").write_text("def thing():\n    import builder.a\n    return builder.a\n")
    assert imports_inside_functions(package) == ["builder/b.py:2 builder.a"]
    assert cycles(import_graph(package)) == [["builder.a", "builder.b"]]
