"""Remove what the runtime can never load, and nothing it could.

Every rule removes files that cannot take part in an import on the target:
bytecode for the build host's Python, extension modules for other Pythons,
operating systems or CPUs, and libraries bundled by auditwheel-style wheels
(`<pkg>.libs/`) that the loader never loads for a remaining binary (the
audit's loader decides, so slim never removes what the audit would find).
Metadata (*.dist-info) stays: importlib.metadata reads it at run time.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from builder.audit.elf import ElfReadError, binary_format, read_elf
from builder.audit.loader import Loader, fits, is_bundled
from builder.audit.tree import LayerTree
from builder.layout import BIN_DIR, PYTHON_DIR, extension_name
from builder.problems import Problem
from builder.runtimes import Target

_BINARY_SUFFIXES = (".so", ".pyd", ".dylib")


@dataclass(frozen=True, kw_only=True)
class SlimResult:
    removed: tuple[str, ...]
    bytes_saved: int
    problems: tuple[Problem, ...] = field(default_factory=tuple)


def _is_binary_candidate(path: Path) -> bool:
    name = path.name
    return name.endswith(_BINARY_SUFFIXES) or ".so." in name


def _runs_on_target(path: Path, target: Target) -> bool:
    """True when the file is an ELF for the target's CPU (or not a binary at all)."""
    kind = binary_format(path)
    if kind == "other":
        return True
    if kind != "elf":
        return False
    try:
        facts = read_elf(path)
    except ElfReadError:
        return True  # unparseable: leave it for the audit to report, never delete blindly
    return target.arch.runs(facts.machine, facts.elf_class)


def _foreign_extensions(python_dir: Path, target: Target) -> tuple[list[Path], list[Problem]]:
    """Extension modules the target cannot load, and modules left with no loadable build."""
    removed: list[Path] = []
    variants: dict[tuple[Path, str], list[Path]] = defaultdict(list)
    for path in sorted(python_dir.rglob("*")):
        if not path.is_file() or not _is_binary_candidate(path):
            continue
        ext = extension_name(path.name)
        if ext is not None or path.name.endswith(".pyd"):
            variants[(path.parent, path.name.split(".", 1)[0])].append(path)
        foreign_abi = path.name.endswith(".pyd") or (ext is not None and not ext.loads_on(target))
        if foreign_abi or not _runs_on_target(path, target):
            removed.append(path)
    gone = set(removed)
    problems = []
    for (parent, stem), files in sorted(variants.items()):
        if all(f in gone for f in files):
            module = (parent / stem).relative_to(python_dir).as_posix()
            builds = sorted({ext.tag if (ext := extension_name(f.name)) else f.suffix for f in files})
            problems.append(
                Problem(
                    code="no-compatible-binary",
                    path=f"{PYTHON_DIR}/{module}",
                    message=(
                        f"{module} has builds for {', '.join(builds)} but none that "
                        f"{target.runtime} on {target.arch.name} can load "
                        f"(it needs {target.extension_suffixes[0]} or .abi3.so)"
                    ),
                    hint=(
                        f"this package release does not support {target.runtime}/{target.arch.name}: "
                        "use one that publishes wheels for it (for aws-psycopg2: psycopg2-binary), "
                        "or an older runtime"
                    ),
                )
            )
    return removed, problems


def _unneeded_bundled_libraries(tree: LayerTree, target: Target) -> list[str]:
    """Libraries in `<pkg>.libs/` the loader loads for no other binary of the layer, directly or
    through another."""
    if any(tree.unparseable()):
        return []  # what it needs cannot be read: any bundled library may be it
    bundled = {rel for rel, _ in tree.elves() if _is_bundled_library(rel)}
    loader = Loader(tree, target)
    # Every other binary may be loaded from outside (imported, run, opened with dlopen), each
    # with what its own loading chain finds.
    starts = [rel for rel, facts in tree.elves() if rel not in bundled and fits(facts, target)]
    lookups = [lookup for start in starts for lookup in loader.walk(start)]
    # A need the loader cannot meet is the audit's missing-library; which file the binary expects
    # instead cannot be known, so none goes.
    if any(lookup.search.found is None and not lookup.search.in_runtime for lookup in lookups):
        return []
    return sorted(bundled - {lookup.search.found for lookup in lookups})


def _is_bundled_library(rel: str) -> bool:
    return rel.startswith(PYTHON_DIR + "/") and is_bundled(rel) and _is_binary_candidate(Path(rel))


def _remove(paths: set[Path]) -> dict[Path, int]:
    """Delete the files; their sizes, by path."""
    sizes: dict[Path, int] = {}
    for path in paths:
        sizes[path] = path.stat().st_size
        path.unlink()
    return sizes


def slim(root: Path, target: Target) -> SlimResult:
    python_dir = root / PYTHON_DIR
    if not python_dir.is_dir():
        return SlimResult(removed=(), bytes_saved=0)
    doomed: list[Path] = []
    # pip --target writes console scripts with the build host's interpreter in the
    # shebang; Lambda only puts /opt/bin on PATH, so they can never run from here.
    doomed += [p for p in (python_dir / BIN_DIR).rglob("*") if p.is_file()]
    doomed += [p for p in python_dir.rglob("*.py[co]") if p.is_file()]
    foreign, problems = _foreign_extensions(python_dir, target)
    doomed += foreign
    removed = _remove(set(doomed))
    # Judged on what is left, so a library only a removed build needed goes too.
    removed |= _remove({root / rel for rel in _unneeded_bundled_libraries(LayerTree(root), target)})
    for cache_dir in sorted(python_dir.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache_dir, ignore_errors=True)
    bin_dir = python_dir / BIN_DIR
    if bin_dir.is_dir():
        shutil.rmtree(bin_dir)
    return SlimResult(
        removed=tuple(path.relative_to(root).as_posix() for path in sorted(removed)),
        bytes_saved=sum(removed.values()),
        problems=tuple(problems),
    )
