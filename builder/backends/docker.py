"""The Docker backend: resolve inside the runtime's SAM build image.

It builds Dockerfile.build on the runtime's SAM build image (Amazon
Linux with pip and gcc, or lambdakit's offline stand-in): pip installs the
requirements there, from source where no wheel exists, and bundle_libs.py copies
the shared libraries the result needs that the runtime lacks into lib/.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
from collections import deque
from collections.abc import Iterable
from pathlib import Path

import docker
import docker.errors
from packaging.utils import canonicalize_name

from builder import DATA_DIR
from builder.audit.base_libraries import base_libraries
from builder.availability import Availability
from builder.backends import Resolved, ResolveRequest, bundle_libs, installed_distributions, requirement_names
from builder.docker import container, images
from builder.errors import EnvironmentProblem, ResolveError, UsageError
from builder.layout import LIB_DIR, PYTHON_DIR
from builder.progress import Progress
from builder.runtimes import Target

# The project root's Dockerfile.build, through a link in data/ that a wheel ships as the file.
DOCKERFILE = DATA_DIR / "Dockerfile.build"
LAYER_IN_IMAGE = "/out/layer"
# Finished builds stay tagged as Docker's build cache: an unchanged requirements
# file rebuilds in seconds. Per target, only the most recent few are kept.
CACHE_REPOSITORY = "lambdakit/layer-build"
CACHE_LABEL = "org.lambdakit.layer-build"
CACHE_KEEP = 4

# System packages a source build of a distribution needs, per package manager of
# the build image (Dockerfile.build picks the one the image has).
SOURCE_BUILD_PACKAGES: dict[str, dict[str, tuple[str, ...]]] = {
    "psycopg2": {"dnf": ("libpq-devel",), "yum": ("postgresql-devel",), "apt": ("libpq-dev",)},
}
PACKAGE_MANAGERS = ("dnf", "yum", "apt")


def system_packages(requirement_names: list[str]) -> dict[str, str]:
    """Build args DNF_PACKAGES, YUM_PACKAGES, APT_PACKAGES for these requirements."""
    wanted = [SOURCE_BUILD_PACKAGES.get(canonicalize_name(name), {}) for name in requirement_names]
    return {
        f"{manager.upper()}_PACKAGES": " ".join(sorted({p for row in wanted for p in row.get(manager, ())}))
        for manager in PACKAGE_MANAGERS
    }


class DockerBackend:
    name = "docker"

    def available(self, target: Target) -> Availability:
        return images.image_availability(target.build_image, target.arch.docker_platform)

    def resolve(self, request: ResolveRequest, progress: Progress) -> Resolved:
        target = request.target
        if request.requirements.included or request.requirements.is_lock:
            raise UsageError(
                f"{request.requirements.path} includes other files or is a lock file; the docker backend "
                "sends one requirements file into the build image",
                hint="flatten it into one file (uv pip compile -o requirements.txt ...), or use --backend uv",
                step="resolve",
            )
        if not DOCKERFILE.is_file():
            raise EnvironmentProblem(f"{DOCKERFILE} is missing from this installation", step="resolve")
        client = container.connect()
        image = images.require_image(client, target.build_image)
        emulation = container.emulation_availability(client, target.arch.docker_platform)
        if not emulation.ok:
            raise EnvironmentProblem(emulation.reason, hint=container.ARM64_HINT, step="resolve")
        buildargs = {
            "BUILD_IMAGE": target.build_image,
            "PYTHON_VERSION": target.version,
            **system_packages(requirement_names(request.requirements)),
        }
        cache_key = f"{target.runtime}-{target.arch.name}"
        progress.output(f"docker build in {image.describe()} for {target.arch.docker_platform}")
        tail: deque[str] = deque(maxlen=15)

        def on_line(line: str) -> None:
            tail.append(line)
            progress.output(line)

        with tempfile.TemporaryDirectory(prefix="lambdakit-docker-") as scratch:
            digest = _write_context(Path(scratch), request, buildargs)
            try:
                image_id, reused = container.build_image(
                    client,
                    context=Path(scratch),
                    dockerfile=DOCKERFILE.name,
                    tag=f"{CACHE_REPOSITORY}:{cache_key}-{digest}",
                    buildargs=buildargs,
                    labels={CACHE_LABEL: cache_key},
                    docker_platform=target.arch.docker_platform,
                    on_line=on_line,
                )
            except EnvironmentProblem as err:
                raise _explain_build_failure(err, image, tail) from err
        # Never started: the container only exists so its files can be copied out.
        with container.Container(
            image=image_id, command=["true"], docker_platform=target.arch.docker_platform, client=client
        ) as built:
            built.copy_out(LAYER_IN_IMAGE, request.staging)
        _prune_cache(client, cache_key)
        return Resolved(
            backend=self.name,
            distributions=installed_distributions(request.staging / PYTHON_DIR),
            notes=_notes(image, request.staging, reused),
        )


def _write_context(context: Path, request: ResolveRequest, buildargs: dict[str, str]) -> str:
    """Fill the build context; returns a digest of everything the build depends on."""
    provided = "\n".join(sorted(base_libraries(request.target))) + "\n"
    files = {
        DOCKERFILE.name: DOCKERFILE.read_bytes(),
        "requirements.txt": request.requirements.text.encode(),
        "bundle_libs.py": Path(bundle_libs.__file__).read_bytes(),
        "provided-libraries.txt": provided.encode(),
    }
    digest = hashlib.sha256(json.dumps(buildargs, sort_keys=True).encode())
    for name, data in files.items():
        (context / name).write_bytes(data)
        digest.update(b"\0" + name.encode() + b"\0" + data)
    return digest.hexdigest()[:12]


def _prune_cache(client: docker.DockerClient, cache_key: str) -> None:
    builds = client.images.list(filters={"label": f"{CACHE_LABEL}={cache_key}"})
    builds.sort(key=lambda image: image.attrs["Created"], reverse=True)
    for old in builds[CACHE_KEEP:]:
        # In use by a running build: then it stays until the next prune.
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(old.id, force=True)


def _explain_build_failure(
    err: EnvironmentProblem, image: container.ImageFacts, tail: Iterable[str]
) -> ResolveError | EnvironmentProblem:
    """pip failing is the requirements' fault (exit 1); any other step, the machine's (exit 2)."""
    if "pip install" not in err.message:
        return EnvironmentProblem(err.message, hint=err.hint, step="resolve")
    docker_chatter = ("Step ", " ---> ", "Removing intermediate container")
    output = "\n".join(line for line in tail if line.strip() and not line.startswith(docker_chatter))
    return ResolveError(
        f"pip could not install the requirements in {image.describe()}:\n{output}",
        hint="read pip's message above: an unknown version needs another pin or index; a failed "
        "compile may need a system package (SOURCE_BUILD_PACKAGES in builder/backends/docker.py)",
        step="resolve",
    )


def _notes(image: container.ImageFacts, staging: Path, reused: bool) -> tuple[str, ...]:
    notes = [f"built in {image.describe()}"]
    lib = staging / LIB_DIR
    if lib.is_dir():
        notes.append("bundled into lib/: " + ", ".join(sorted(p.name for p in lib.iterdir())))
    if reused:
        notes.append("every build step came from Docker's cache: same build image and requirements file")
    return tuple(notes)


BACKEND = DockerBackend()
