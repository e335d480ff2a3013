"""LocalStack's Lambda on a machine that cannot download: stand-ins for its two downloads.

To run a function, LocalStack (1) pulls the runtime's image and (2) copies its
runtime init, a Go binary it downloads from GitHub, into each container. Offline
both fail. The stand-ins:

- **runtime images**: lambdakit's stand-in runtime images
  (`public.ecr.aws/lambda/python:X.Y-<arch>`, builder/docker/standin.py) pushed to a
  registry on loopback, one multi-architecture tag per runtime, which LocalStack
  pulls through LAMBDA_RUNTIME_IMAGE_MAPPING with the function's platform;
- **the init**: `data/localstack-init.py`, a program on the image's own Python
  that speaks LocalStack's init contract, put where LocalStack looks before it
  downloads (its FILESYSTEM_ROOT, under LAMBDA_INIT_RELEASE_VERSION).

What this proves and what it does not is in the init's docstring and the README.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from builder import DATA_DIR
from builder.docker import container
from builder.errors import EnvironmentProblem
from builder.host import host_arch
from builder.progress import Progress
from builder.runtimes import ARCHES, target

INIT_SOURCE = DATA_DIR / "localstack-init.py"
# A release name of our own: a real download's directory is never shadowed.
INIT_VERSION = "lambdakit-standin"
REPOSITORY = "lambdakit/lambda-python"
REGISTRY_TIMEOUT_S = 30

_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
# An engine with the containerd image store pushes OCI manifests.
_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass(frozen=True, kw_only=True)
class PublishedRuntime:
    runtime: str
    image: str  # what LocalStack pulls: one tag, a manifest list over the arches below
    arches: tuple[str, ...]
    sources: tuple[str, ...]  # the local images behind it, with what they are


def init_path(filesystem_root: Path) -> Path:
    """Where LocalStack looks for its init before downloading one (for this host's architecture)."""
    runtime_dir = filesystem_root / "var" / "lib" / "localstack" / "lib" / "lambda-runtime"
    return runtime_dir / INIT_VERSION / host_arch() / "var" / "rapid" / "init"


def install_init(filesystem_root: Path) -> Path:
    destination = init_path(filesystem_root)
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(INIT_SOURCE, destination)
    destination.chmod(0o755)
    return destination


def settings(registry: str) -> dict[str, str]:
    """The LocalStack configuration that makes it use the stand-ins."""
    return {
        "LAMBDA_INIT_RELEASE_VERSION": INIT_VERSION,
        "LAMBDA_RUNTIME_IMAGE_MAPPING": f"{registry}/{REPOSITORY}:<runtime>",
    }


def publish_runtime_images(
    registry: str, runtimes: Iterable[str], progress: Progress
) -> list[PublishedRuntime]:
    """Push the runtime images present here (official or stand-in) for each runtime to the registry.

    Each architecture goes to `<runtime>-<arch>`, then one manifest list at `<runtime>`
    names them all, so that LocalStack's pull with the function's platform gets the
    right one, and a function for an architecture with no image fails to start
    instead of running on the wrong CPU.
    """
    client = container.connect()
    published = []
    for runtime in runtimes:
        pushed: list[tuple[str, str]] = []
        sources = []
        for arch in ARCHES:
            local = target(runtime, arch).runtime_image
            facts = container.image_facts(client, local)
            if facts is None:
                continue
            tag = f"{runtime}-{arch}"
            progress.step("registry", f"{facts.describe()} -> {registry}/{REPOSITORY}:{tag}")
            _push(client, local, f"{registry}/{REPOSITORY}", tag)
            pushed.append((arch, tag))
            sources.append(facts.describe())
        if not pushed:
            continue
        _put_manifest_list(registry, runtime, pushed)
        published.append(
            PublishedRuntime(
                runtime=runtime,
                image=f"{registry}/{REPOSITORY}:{runtime}",
                arches=tuple(arch for arch, _ in pushed),
                sources=tuple(sources),
            )
        )
    return published


def _push(client: docker.DockerClient, local: str, repository: str, tag: str) -> None:
    try:
        client.images.get(local).tag(repository, tag)
        for line in client.images.push(repository, tag=tag, stream=True, decode=True):
            if "error" in line:
                raise EnvironmentProblem(
                    f"pushing {local} to {repository}:{tag} failed: {line['error']}",
                    hint="is the loopback registry running? scripts/localstack.sh starts it",
                    step="registry",
                )
    except docker.errors.APIError as err:
        message = f"pushing {local} to {repository}:{tag} failed: {err}"
        raise EnvironmentProblem(message, step="registry") from err


def _registry_request(registry: str, path: str, *, method: str = "GET", body: bytes | None = None,
                      headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:  # fmt: skip
    url = f"http://{registry}/v2/{REPOSITORY}/{path}"
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=REGISTRY_TIMEOUT_S) as response:
            return response.read(), dict(response.headers)
    except (urllib.error.URLError, OSError) as err:
        raise EnvironmentProblem(f"{method} {url} failed: {err}", step="registry") from err


def _put_manifest_list(registry: str, runtime: str, pushed: list[tuple[str, str]]) -> None:
    entries = []
    for arch, tag in pushed:
        accept = {"Accept": f"{_MANIFEST}, {_OCI_MANIFEST}"}
        body, headers = _registry_request(registry, f"manifests/{tag}", headers=accept)
        digest = headers.get("Docker-Content-Digest") or f"sha256:{hashlib.sha256(body).hexdigest()}"
        platform = target(runtime, arch).arch.docker_platform.split("/")
        platform_entry = {"os": platform[0], "architecture": platform[1]}
        if platform[1] == "arm64":
            platform_entry["variant"] = "v8"
        entry = {
            "mediaType": headers.get("Content-Type", _MANIFEST).split(";")[0],
            "size": len(body),
            "digest": digest,
            "platform": platform_entry,
        }
        entries.append(entry)
    document = {"schemaVersion": 2, "mediaType": _MANIFEST_LIST, "manifests": entries}
    _registry_request(
        registry,
        f"manifests/{runtime}",
        method="PUT",
        body=json.dumps(document).encode(),
        headers={"Content-Type": _MANIFEST_LIST},
    )
