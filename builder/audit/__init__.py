"""The static audit: what can be known about a layer from its files alone, without running it."""

from __future__ import annotations

from pathlib import Path

from builder.audit.rules import CHECKS, check_size
from builder.audit.tree import LayerTree
from builder.problems import Problem
from builder.runtimes import Target


def audit_tree(root: Path, target: Target, *, zipped_bytes: int | None = None) -> list[Problem]:
    """Every problem the rules find in the unpacked layer at root, for one runtime and arch."""
    tree = LayerTree(root)
    problems = [problem for check in CHECKS for problem in check(tree, target)]
    return problems + check_size(tree, target, zipped_bytes)


def highest_glibc(root: Path) -> tuple[int, int] | None:
    """The newest glibc any ELF file in the layer needs, as (major, minor)."""
    versions = [facts.highest_glibc for _, facts in LayerTree(root).elves() if facts.highest_glibc]
    return max((v[0], v[1]) for v in versions) if versions else None
