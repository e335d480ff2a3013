"""Layers merged into the function packages that use them, for a LocalStack that does not apply layers.

LocalStack Community accepts layers but does not apply them when a function
runs, so each layer's content is copied into each function package that uses it,
as Lambda would see the two together (function files win, as /var/task comes
before /opt/python on Lambda).
"""

from __future__ import annotations

import filecmp
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from builder.app.template import AppTemplate, LayerSpec
from builder.errors import UsageError
from builder.layout import LIB_DIR, PYTHON_DIR, import_entries, namespace_portion
from builder.runtimes import Target
from builder.store import DEFAULT_OUT, TREE_DIR


@dataclass(frozen=True, kw_only=True)
class MergeRecord:
    function: str
    layer: str
    source: str
    copied: int  # files copied into the function package
    # The function's own modules, packages and libraries that differ from the layer's: they win,
    # as on Lambda, where /var/task comes before /opt on sys.path and LD_LIBRARY_PATH.
    kept: tuple[str, ...]
    skipped: tuple[str, ...]  # layer folders with no function-package counterpart


def layer_source(build_dir: Path, layer: LayerSpec, project: Path) -> Path:
    """What is deployed as the layer: SAM's build of it, else lambdakit's published tree."""
    for candidate in (build_dir / layer.logical_id, project / DEFAULT_OUT / layer.name / TREE_DIR):
        if (candidate / PYTHON_DIR).is_dir():
            return candidate
    raise UsageError(
        f"no built content for layer {layer.logical_id}",
        hint="run sam build first (lambdakit deploy does), or lambdakit build-layer " + layer.name,
        step="merge",
    )


def _mapping(layer_root: Path, target: Target) -> list[tuple[Path, Path, Path | None]]:
    """(layer folder, folder in the function package, subfolder not to copy).

    /opt/python and its site-packages are on sys.path as /var/task is, and
    /var/task/lib is on LD_LIBRARY_PATH as /opt/lib is.
    """
    python = layer_root / PYTHON_DIR
    # python/lib/pythonX.Y/site-packages is a sys.path entry of its own, not a package named lib.
    nested = None if (python / "lib" / "__init__.py").exists() else python / "lib"
    pairs: list[tuple[Path, Path, Path | None]] = [(python, Path(), nested)]
    site = layer_root / target.site_packages
    if site.is_dir():
        pairs.append((site, Path(), None))
    if (layer_root / LIB_DIR).is_dir():
        pairs.append((layer_root / LIB_DIR, Path(LIB_DIR), None))
    return pairs


def _copy_files(source: Path, dest: Path, root: Path) -> tuple[int, list[str]]:
    """Copy the files dest lacks, file by file, as the dynamic loader looks up each library by name
    in each directory; (files copied, dest's own files that differ and were kept, relative to root)."""
    copied, kept = 0, []
    for directory, _, files in os.walk(source):
        for name in files:
            src = Path(directory) / name
            out = dest / src.relative_to(source)
            if out.exists() or out.is_symlink():
                if not _identical(src, out):
                    kept.append(str(out.relative_to(root)))
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, out, follow_symlinks=False)
            copied += 1
    return copied, kept


def _merge_import_path(source: Path, dest: Path, root: Path, *, skip: Path | None) -> tuple[int, list[str]]:
    """Add a layer's sys.path entry to the package's as Python sees the two together.

    A top-level module or regular package the function has hides the layer's WHOLE copy,
    whatever its file names (Python never looks inside the layer's psycopg2/ once
    /var/task/psycopg2/ is found; the function's foo.py hides the layer's foo/), so it is
    kept as is and nothing of the layer's is mixed into it. Namespace packages combine.
    """
    copied, kept = 0, []
    own = import_entries(dest) if dest.is_dir() else {}
    for key, entries in import_entries(source).items():
        entries = [entry for entry in entries if entry != skip]
        mine = own.get(key, [])
        if mine and not namespace_portion(mine):
            if not all((dest / e.name).exists() and _identical(e, dest / e.name) for e in entries):
                kept += [str(path.relative_to(root)) for path in mine]
            continue
        for entry in entries:
            out = dest / entry.name
            if out.is_dir() and entry.is_dir() and not entry.is_symlink():
                n, k = _merge_import_path(entry, out, root, skip=None)
                copied, kept = copied + n, kept + k
            elif entry.is_dir() and not entry.is_symlink():
                shutil.copytree(entry, out, symlinks=True)
                copied += sum(len(files) for _, _, files in os.walk(out))
            else:
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(entry, out, follow_symlinks=False)
                copied += 1
    return copied, kept


def _identical(a: Path, b: Path) -> bool:
    """Same file content, or directories with the same files of the same content."""
    if a.is_dir() != b.is_dir():
        return False
    if not a.is_dir():
        return filecmp.cmp(a, b, shallow=False)
    names = sorted(p.relative_to(a) for p in a.rglob("*"))
    if names != sorted(p.relative_to(b) for p in b.rglob("*")):
        return False
    return all(_identical(a / name, b / name) for name in names if not (a / name).is_dir())


def merge_layers(app: AppTemplate, build_dir: Path, project: Path) -> list[MergeRecord]:
    """Copy each layer's content into the packages of the functions that use it."""
    records = []
    for function in app.functions:
        if not function.layers or not function.is_python_zip:
            continue
        package = build_dir / function.logical_id
        if not package.is_dir():
            raise UsageError(f"no function package at {package}", hint="run sam build first", step="merge")
        for layer_id in function.layers:
            root = layer_source(build_dir, app.layer(layer_id), project)
            copied, kept = 0, []
            for source, relative, skip in _mapping(root, function.target):
                if relative == Path(LIB_DIR):
                    n, k = _copy_files(source, package / relative, build_dir)
                else:
                    n, k = _merge_import_path(source, package / relative, build_dir, skip=skip)
                copied += n
                kept += k
            records.append(
                MergeRecord(
                    function=function.logical_id,
                    layer=layer_id,
                    source=str(root),
                    copied=copied,
                    kept=tuple(kept),
                    # /opt/bin is on PATH; nothing in a function package is.
                    skipped=("bin",) if (root / "bin").is_dir() else (),
                )
            )
    return records
