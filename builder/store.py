"""Where a built layer is published, and how: the layout build writes and validate reads, the
lock, the cache lookup, the atomic publish and the export.

OUT/NAME is a symlink to OUT/.builds/NAME-<key>-<id>/, which holds tree/ (the unpacked
layer), NAME.zip and layer.json; OUT/.builds/NAME.lock serialises builds of one layer. A
build only ever writes its own staging directory until the one atomic rename that publishes
it, so a failed or interrupted build leaves the previous layer as it was.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from builder.errors import EnvironmentProblem, UsageError
from builder.layout import PYTHON_DIR
from builder.manifest import Manifest, read_manifest, tree_matches, zip_matches

DEFAULT_OUT = Path("build/layers")
BUILDS_DIR = ".builds"
TREE_DIR = "tree"
MANIFEST = "layer.json"

# A layer name is a name, never a path: it becomes a folder and file names under --out, and
# Lambda's own rule for layer names is letters, digits, '-' and '_'.
LAYER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def check_layer_name(name: str) -> None:
    if LAYER_NAME.fullmatch(name) is None:
        raise UsageError(
            f"{name!r} is not a layer name",
            hint="use letters, digits, '-' and '_' (at most 64, starting with a letter or digit)",
        )


@contextmanager
def layer_lock(out: Path, name: str) -> Iterator[None]:
    """Held while a layer is built and published: a second build of it waits, then finds it done."""
    locks = out / BUILDS_DIR
    locks.mkdir(parents=True, exist_ok=True)
    with (locks / f"{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def published_manifest(published: Path, key: str) -> Manifest | None:
    """The manifest of OUT/NAME when it was built from these inputs (key) and its zip and tree are
    still what it records: the cache lookup that makes an unchanged rebuild a no-op."""
    manifest = read_manifest(published / MANIFEST)
    if manifest is None or manifest.cache_key != key:
        return None
    if not zip_matches(manifest.zip, published / manifest.zip.file) or not tree_matches(
        manifest.file_sizes, published / TREE_DIR
    ):
        return None
    return manifest


def build_dirs(out: Path, name: str, *, staging: bool) -> list[Path]:
    """This layer's build directories (or staging directories) in OUT/.builds, and no other layer's:
    `pg-extra-...` is not one of `pg`'s."""
    pattern = re.compile(("\\.staging-" if staging else "") + re.escape(name) + r"-[0-9a-f]{12}-[0-9a-f]{8}")
    builds = out / BUILDS_DIR
    return [path for path in builds.iterdir() if pattern.fullmatch(path.name)] if builds.is_dir() else []


def staging_dirs(out: Path, name: str, key: str) -> tuple[Path, Path]:
    """A new build directory's name and the staging directory it is written in until published."""
    build_dir = out / BUILDS_DIR / f"{name}-{key[:12]}-{uuid.uuid4().hex[:8]}"
    return build_dir, out / BUILDS_DIR / f".staging-{build_dir.name}"


def publish(out: Path, name: str, build_dir: Path) -> None:
    """Point OUT/NAME at a complete build directory, then remove this layer's older builds."""
    published = out / name
    if published.exists() and not published.is_symlink():
        raise UsageError(
            f"{published} is a plain directory, not a layer published by lambdakit",
            hint="move it away or pass another --out; lambdakit never deletes what it did not build",
        )
    link = out / f".{name}.{uuid.uuid4().hex}.link"
    link.symlink_to(build_dir.relative_to(out))
    os.replace(link, published)  # the one atomic step: readers see the old layer or the new one
    for stale in build_dirs(out, name, staging=False):
        if stale != build_dir and stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)


EXPORTS = "exports.json"


def export(published: Path, dest: Path, *, function_package: bool) -> None:
    """Copy the published tree where another tool expects it (SAM's ARTIFACTS_DIR), replacing a
    previous export there whole: a package dropped from the requirements leaves it too.

    The folder must be empty, or hold exactly what lambdakit exported there last (recorded in
    OUT/.builds/exports.json, never in the folder, which ships as it is); and it may not be
    inside lambdakit's own output, whose published trees the cache vouches for.
    """
    tree = published / TREE_DIR
    source = tree / PYTHON_DIR if function_package else tree
    out = published.parent.resolve()
    target = dest.resolve()
    if target == out or out in target.parents or target in out.parents:
        raise UsageError(
            f"{dest} is inside lambdakit's output {out} (or holds it)",
            hint="export somewhere else, e.g. SAM's $(ARTIFACTS_DIR)",
            step="export",
        )
    record = out / BUILDS_DIR / EXPORTS
    exported: dict[str, list[str]] = _read_exports(record)
    try:
        present = (
            sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) if target.exists() else []
        )
        if present and present != exported.get(str(target)):
            raise UsageError(
                f"{dest} is not empty and not a previous export of lambdakit: it is left as it is",
                hint="export into an empty folder (lambdakit replaces its own exports whole)",
                step="export",
            )
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target)
    except OSError as err:
        raise EnvironmentProblem(f"cannot export to {dest}: {err}", step="export") from err
    exported[str(target)] = sorted(p.relative_to(target).as_posix() for p in target.rglob("*"))
    record.write_text(json.dumps(exported, indent=1, sort_keys=True) + "\n")


def _read_exports(path: Path) -> dict[str, list[str]]:
    """OUT/.builds/exports.json: each export folder and the files lambdakit put there."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
