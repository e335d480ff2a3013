"""validate = static audit + import check, over a layer directory or zip."""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from builder.audit import audit_tree
from builder.audit.dependencies import check_dependencies
from builder.build import DEFAULT_OUT, MANIFEST, TREE_DIR
from builder.errors import UsageError
from builder.layout import PYTHON_DIR, apply_shadowing, top_level_modules
from builder.problems import Problem, Severity, errors
from builder.runtimes import Target
from builder.verify import ImportCheck, ImportCheckChoice, check_imports

Verdict = Literal["valid", "invalid", "not-verified"]
REPORT_SCHEMA = 1


@dataclass(frozen=True, kw_only=True)
class ValidationReport:
    target: Target
    problems: tuple[Problem, ...]
    imports: ImportCheck

    @property
    def verdict(self) -> Verdict:
        if errors(list(self.problems)) or self.imports.status == "failed":
            return "invalid"
        if self.imports.status == "not-verified":
            return "not-verified"
        return "valid"

    @property
    def ok(self) -> bool:
        return self.verdict == "valid"

    def to_dict(self) -> dict[str, object]:
        return {
            "schema": REPORT_SCHEMA,
            "ok": self.ok,
            "verdict": self.verdict,
            "runtime": self.target.runtime,
            "arch": self.target.arch.name,
            "problems": [p.to_dict() for p in self.problems],
            "imports": self.imports.to_dict(),
        }


def import_problems(check: ImportCheck) -> list[Problem]:
    problems = [
        Problem(
            code="import-failed",
            path=module,
            message=f"import {module} failed in {check.where}: {error}",
            hint="a missing dependency or a binary the runtime cannot load; see the other problems",
        )
        for module, error in check.failures().items()
    ]
    if check.status == "failed" and not problems:
        problems.append(
            Problem(
                code="import-failed",
                path="",
                message=f"{check.where}: {check.reason}",
                hint="see the message",
            )
        )
    return problems


def validate_tree(
    root: Path,
    target: Target,
    *,
    zipped_bytes: int | None = None,
    extra: tuple[Problem, ...] = (),
    import_check: ImportCheckChoice = "auto",
    missing_dependency: Severity = "error",
) -> ValidationReport:
    """missing_dependency: "warning" for a layer checked alone, whose distributions may rely
    on what the function or another layer provides; "error" where the tree is all there is
    (a function with its layers, or a layer built from a complete requirement set)."""
    problems = [
        *extra,
        *audit_tree(root, target, zipped_bytes=zipped_bytes),
        *check_dependencies(root, target, severity=missing_dependency),
    ]
    allowed = None if import_check == "auto" else {import_check}
    imports = check_imports(root, target, top_level_modules(root, target), allowed=allowed)
    return ValidationReport(
        target=target, problems=tuple(problems + import_problems(imports)), imports=imports
    )


@contextmanager
def layer_tree(path: Path) -> Iterator[tuple[Path, int | None]]:
    """The directory to audit for a layer given as a directory, a zip, or a build output."""
    if path.is_file() and zipfile.is_zipfile(path):
        with tempfile.TemporaryDirectory(prefix="lambdakit-validate-") as scratch:
            with zipfile.ZipFile(path) as archive:
                for member in archive.namelist():
                    if member.startswith("/") or ".." in Path(member).parts:
                        raise UsageError(f"{path} holds an unsafe path {member!r}", hint="rebuild the zip")
                archive.extractall(scratch)
            yield Path(scratch), path.stat().st_size
        return
    if not path.is_dir():
        raise UsageError(
            f"{path} is neither a layer directory nor a zip file",
            hint="pass a directory with python/, a layer .zip, or a build output (build/layers/NAME)",
        )
    # A build output (layer.json + tree/) or a layer's source folder (layers/<name>/).
    built = path / TREE_DIR
    if (path / MANIFEST).is_file() and built.is_dir():
        zips = sorted(path.glob("*.zip"))
        yield built, (zips[0].stat().st_size if zips else None)
        return
    if (path / "requirements.txt").is_file() and not (path / PYTHON_DIR).exists():
        output = DEFAULT_OUT / path.resolve().name
        if (output / MANIFEST).is_file():
            with layer_tree(output) as inner:
                yield inner
            return
        raise UsageError(
            f"{path} is a layer's source folder and it has not been built yet",
            hint=f"run: lambdakit build-layer {path.resolve().name}",
        )
    yield path, None


def _link_or_copy(source: str, dest: str) -> None:
    # Hard links make the view cheap; a later source replaces an earlier one.
    if os.path.lexists(dest):
        os.unlink(dest)
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


@contextmanager
def function_tree(package: Path, layers: Sequence[Path]) -> Iterator[Path]:
    """A layer-shaped view of a function package and the layers it uses.

    Lambda extracts the layers into /opt in order, a later one's files replacing an
    earlier one's, and puts the package (/var/task) on sys.path before /opt/python:
    a module or package the function ships hides the layers' copy of it whole.
    """
    if not package.is_dir():
        raise UsageError(
            f"{package} is not a function package directory", hint="pass the built function's folder"
        )
    with tempfile.TemporaryDirectory(prefix="lambdakit-function-") as scratch:
        view = Path(scratch)
        for layer in layers:
            with layer_tree(layer) as (tree, _):
                shutil.copytree(tree, view, dirs_exist_ok=True, copy_function=_link_or_copy)
        hidden: set[Path] = set()
        if (view / PYTHON_DIR).is_dir():
            hidden = apply_shadowing(package, view / PYTHON_DIR)
        shutil.copytree(
            package,
            view / PYTHON_DIR,
            dirs_exist_ok=True,
            copy_function=_link_or_copy,
            ignore=lambda directory, names: {n for n in names if Path(directory) / n in hidden},
        )
        yield view
