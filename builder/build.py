"""build-layer: resolve -> slim -> package -> audit -> verify -> publish, as visible steps.

The published layer is a symlink `OUT/<name>` to a complete build directory,
swapped with one atomic rename. A failed or interrupted build only ever touches
its own staging directory, so the previous good layer stays as it was; a lock
serialises concurrent builds of one layer.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from builder import DATA_DIR, __version__, lazy
from builder.audit import highest_glibc
from builder.audit.rules import check_zipped_size
from builder.backends import Backend, ResolveRequest, requirement_names
from builder.errors import EnvironmentProblem, InvalidLayer, UsageError
from builder.layout import PYTHON_DIR
from builder.package import (
    Manifest,
    Sizes,
    SlimSummary,
    cache_key,
    read_manifest,
    tree_matches,
    write_zip,
    zip_matches,
    zip_record,
)
from builder.progress import Progress
from builder.requirements import read_requirements
from builder.runtimes import Target
from builder.slim import slim
from builder.store import BUILDS_DIR, MANIFEST, TREE_DIR
from builder.validate import validate_tree
from builder.verify import ImportCheckChoice, verifier_available

BackendName = Literal["auto", "uv", "pip", "docker"]
# Loaded on first use (builder/lazy.py): a no-op rebuild never pays for the Docker SDK.
BACKENDS: dict[str, str] = {
    "uv": "builder.backends.uv:BACKEND",
    "pip": "builder.backends.pip:BACKEND",
    "docker": "builder.backends.docker:BACKEND",
}
# The data files the rules read: a change to one changes verdicts, so it is part of the cache key.
RULE_DATA = ("runtimes.json", "base-libraries.json")


@dataclass(frozen=True, kw_only=True)
class BuildOptions:
    name: str
    requirements: Path
    target: Target
    out: Path
    backend: BackendName = "auto"
    validate: bool = True
    import_check: ImportCheckChoice = "auto"
    force: bool = False


@dataclass(frozen=True, kw_only=True)
class BuildResult:
    name: str
    status: Literal["built", "up-to-date"]
    path: Path  # OUT/<name>: tree/, <name>.zip, layer.json
    manifest: Manifest
    backend_reason: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def zip_path(self) -> Path:
        return self.path / f"{self.name}.zip"

    @property
    def tree(self) -> Path:
        return self.path / TREE_DIR

    @property
    def verdict(self) -> str:
        return self.manifest.verdict


def load_backend(name: str) -> Backend:
    backend: Backend = lazy.load(BACKENDS[name])
    return backend


def choose_backend(name: BackendName, target: Target) -> tuple[Backend, str]:
    """The backend to use and why.

    "auto" takes Docker only with the official build image: an offline stand-in
    compiles against Debian's newer glibc, so source builds there are for
    explicit --backend docker use, where the audit then judges them.
    """
    if name != "auto":
        backend = load_backend(name)
        availability = backend.available(target)
        if not availability.ok:
            raise EnvironmentProblem(
                f"the {name} backend cannot build for {target.describe()}: {availability.reason}",
                hint="fix that, or use --backend uv (wheels only, no Docker)",
                step="resolve",
            )
        return backend, f"{name}, as asked: {availability.reason}"
    availability = load_backend("docker").available(target)
    if availability.ok and not availability.standin:
        return load_backend("docker"), f"docker: {availability.reason}"
    why = "only an offline stand-in of the build image is present" if availability.ok else availability.reason
    return load_backend("uv"), f"uv, because docker is not used: {why}"


@contextmanager
def _layer_lock(out: Path, name: str) -> Iterator[None]:
    locks = out / BUILDS_DIR
    locks.mkdir(parents=True, exist_ok=True)
    with (locks / f"{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _cached(published: Path, key: str, name: str, options: BuildOptions) -> Manifest | None:
    manifest = read_manifest(published / MANIFEST)
    if manifest is None or manifest.cache_key != key:
        return None
    if not zip_matches(manifest.zip, published / f"{name}.zip") or not tree_matches(
        manifest.file_sizes, published / TREE_DIR
    ):
        return None
    # Recorded as not verified: worth a new build once something can check the import.
    if manifest.verdict == "not-verified" and verifier_available(options.target, options.import_check):
        return None
    return manifest


# A layer name is a name, never a path: it becomes a folder and file names under --out, and
# Lambda's own rule for layer names is letters, digits, '-' and '_'.
LAYER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def check_layer_name(name: str) -> None:
    if LAYER_NAME.fullmatch(name) is None:
        raise UsageError(
            f"{name!r} is not a layer name",
            hint="use letters, digits, '-' and '_' (at most 64, starting with a letter or digit)",
        )


def _build_dirs(out: Path, name: str, *, staging: bool) -> list[Path]:
    """This layer's build directories (or staging directories) in OUT/.builds, and no other layer's:
    `pg-extra-...` is not one of `pg`'s."""
    pattern = re.compile(("\\.staging-" if staging else "") + re.escape(name) + r"-[0-9a-f]{12}-[0-9a-f]{8}")
    builds = out / BUILDS_DIR
    return [path for path in builds.iterdir() if pattern.fullmatch(path.name)] if builds.is_dir() else []


def _publish(out: Path, name: str, build_dir: Path) -> None:
    published = out / name
    if published.exists() and not published.is_symlink():
        raise UsageError(
            f"{published} is a plain directory, not a layer published by lambdakit",
            hint="move it away or pass another --out; lambdakit never deletes what it did not build",
        )
    link = out / f".{name}.{uuid.uuid4().hex}.link"
    link.symlink_to(build_dir.relative_to(out))
    os.replace(link, published)  # the one atomic step: readers see the old layer or the new one
    for stale in _build_dirs(out, name, staging=False):
        if stale != build_dir and stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)


def build_layer(options: BuildOptions, progress: Progress) -> BuildResult:
    check_layer_name(options.name)
    target = options.target
    requirements = read_requirements(options.requirements)
    # The backend asked for, not the one "auto" would pick: deciding that means
    # asking the Docker engine, and a no-op rebuild must stay instant.
    key = cache_key(
        requirements_text=requirements.key_text,
        runtime=target.runtime,
        arch=target.arch.name,
        backend=options.backend,
        data_texts=tuple((DATA_DIR / name).read_text() for name in RULE_DATA),
        validate=options.validate,
        import_check=options.import_check,
    )
    out, name = options.out.resolve(), options.name
    published = out / name
    if not options.force and (manifest := _cached(published, key, name, options)) is not None:
        return BuildResult(name=name, status="up-to-date", path=published, manifest=manifest)

    backend, reason = choose_backend(options.backend, target)
    timings: dict[str, float] = {}

    @contextmanager
    def step(label: str, detail: str = "") -> Iterator[None]:
        progress.step(label, detail)
        start = time.perf_counter()
        yield
        timings[label] = round(time.perf_counter() - start, 3)

    with _layer_lock(out, name):
        if not options.force and (manifest := _cached(published, key, name, options)) is not None:
            # Another build of the same inputs finished while this one waited for the lock.
            return BuildResult(name=name, status="up-to-date", path=published, manifest=manifest)
        # Left by a build of this layer that was killed (SIGKILL, power loss): none can be
        # running now, since this one holds the layer's lock.
        for abandoned in _build_dirs(out, name, staging=True):
            shutil.rmtree(abandoned, ignore_errors=True)
        build_dir = out / BUILDS_DIR / f"{name}-{key[:12]}-{uuid.uuid4().hex[:8]}"
        staging = out / BUILDS_DIR / f".staging-{build_dir.name}"
        tree = staging / TREE_DIR
        tree.mkdir(parents=True)
        try:
            with step(
                "resolve",
                f"{', '.join(requirement_names(requirements)) or requirements.path} with {backend.name} "
                f"for {target.describe()}",
            ):
                resolved = backend.resolve(
                    ResolveRequest(requirements=requirements, target=target, staging=tree), progress
                )
            with step("slim", "removing files the runtime can never load"):
                slimmed = slim(tree, target)
            # The zip is written while the tree is audited and imported: zlib and the import
            # check's interpreter each keep a core busy. Only the zip's size waits for both.
            with ThreadPoolExecutor(max_workers=1) as background, step("package", f"{name}.zip"):
                zipping = background.submit(write_zip, tree, staging / f"{name}.zip")
                if options.validate:
                    with step("validate", "static audit and import check, while zipping"):
                        report = validate_tree(
                            tree, target, extra=slimmed.problems, import_check=options.import_check
                        )
                packaged = zipping.result()
            validation = None
            if options.validate:
                validation = dataclasses.replace(
                    report, problems=report.problems + tuple(check_zipped_size(packaged.zipped_bytes))
                )
                if validation.verdict == "invalid":
                    raise InvalidLayer(
                        f"the {name} layer for {target.describe()} is invalid; it was not published",
                        hint="fix the problems listed, or pass --no-validate to publish it unvalidated",
                        step="validate",
                        report=validation.to_dict(),
                    )
            glibc = highest_glibc(tree)
            manifest = Manifest(
                name=name,
                tool_version=__version__,
                runtime=target.runtime,
                arch=target.arch.name,
                os_name=target.os_name,
                runtime_glibc=target.glibc_text,
                highest_glibc_needed=".".join(map(str, glibc)) if glibc else None,
                backend=backend.name,
                cache_key=key,
                requirements_sha256=hashlib.sha256(requirements.key_text.encode()).hexdigest(),
                packages=resolved.distributions,
                sizes=Sizes(unzipped=packaged.unzipped_bytes, zipped=packaged.zipped_bytes),
                slim=SlimSummary(removed_files=len(slimmed.removed), bytes_saved=slimmed.bytes_saved),
                zip=zip_record(packaged.zip_path, packaged.zip_sha256),
                validation=validation,
                files=packaged.files,
                file_sizes=packaged.file_sizes,
            )
            (staging / MANIFEST).write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n")
            with step("publish", str(published)):
                staging.rename(build_dir)
                _publish(out, name, build_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return BuildResult(
        name=name, status="built", path=published, manifest=manifest, backend_reason=reason, timings=timings
    )


EXPORTS = "exports.json"


def export(result: BuildResult, dest: Path, *, function_package: bool) -> None:
    """Copy the published tree where another tool expects it (SAM's ARTIFACTS_DIR), replacing a
    previous export there whole: a package dropped from the requirements leaves it too.

    The folder must be empty, or hold exactly what lambdakit exported there last (recorded in
    OUT/.builds/exports.json, never in the folder, which ships as it is); and it may not be
    inside lambdakit's own output, whose published trees the cache vouches for.
    """
    source = result.tree / PYTHON_DIR if function_package else result.tree
    out = result.path.parent.resolve()
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
