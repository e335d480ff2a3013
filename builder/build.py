"""build-layer: decide whether there is work, then run the steps and publish.

  cache lookup -> [lock] -> resolve -> slim -> package + validate -> publish
  (store.py)                (pipeline.py, loaded only when there is work)    (store.py)

The published layer is a symlink `OUT/<name>` to a complete build directory,
swapped with one atomic rename. A failed or interrupted build only ever touches
its own staging directory, so the previous good layer stays as it was; a lock
serialises concurrent builds of one layer.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from builder import DATA_DIR, lazy
from builder.errors import EnvironmentProblem
from builder.manifest import Manifest, cache_key
from builder.progress import Progress
from builder.requirements import read_requirements
from builder.runtimes import Target
from builder.store import (
    TREE_DIR,
    build_dirs,
    check_layer_name,
    layer_lock,
    publish,
    published_manifest,
    staging_dirs,
)
from builder.verify import ImportCheckChoice, verifier_available

if TYPE_CHECKING:
    # Only the type: the backends' package loads with the first backend (BACKENDS), not at start-up.
    from builder.backends import Backend

BackendName = Literal["auto", "uv", "pip", "docker"]
# Loaded on first use (builder/lazy.py): a no-op rebuild never pays for the Docker SDK, nor for
# the steps (the ELF reader, the resolvers).
PIPELINE = "builder.pipeline:run_steps"
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


def _cached(published: Path, key: str, options: BuildOptions) -> Manifest | None:
    manifest = published_manifest(published, key)
    # Recorded as not verified: worth a new build once something can check the import.
    if (
        manifest is not None
        and manifest.verdict == "not-verified"
        and verifier_available(options.target, options.import_check)
    ):
        return None
    return manifest


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
    if not options.force and (manifest := _cached(published, key, options)) is not None:
        return BuildResult(name=name, status="up-to-date", path=published, manifest=manifest)

    backend, reason = choose_backend(options.backend, target)
    run_steps = lazy.load(PIPELINE)
    with layer_lock(out, name):
        if not options.force and (manifest := _cached(published, key, options)) is not None:
            # Another build of the same inputs finished while this one waited for the lock.
            return BuildResult(name=name, status="up-to-date", path=published, manifest=manifest)
        # Left by a build of this layer that was killed (SIGKILL, power loss): none can be
        # running now, since this one holds the layer's lock.
        for abandoned in build_dirs(out, name, staging=True):
            shutil.rmtree(abandoned, ignore_errors=True)
        build_dir, staging = staging_dirs(out, name, key)
        try:
            manifest, timings = run_steps(
                name=name,
                requirements=requirements,
                target=target,
                backend=backend,
                cache_key=key,
                validate=options.validate,
                import_check=options.import_check,
                staging=staging,
                progress=progress,
            )
            progress.step("publish", str(published))
            started = time.perf_counter()
            staging.rename(build_dir)
            publish(out, name, build_dir)
            timings["publish"] = round(time.perf_counter() - started, 3)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return BuildResult(
        name=name, status="built", path=published, manifest=manifest, backend_reason=reason, timings=timings
    )
