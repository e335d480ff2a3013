"""The Docker SDK wrapper: the engine, its images, and containers that never outlive their use.

`Container` is a context manager that creates a container on entry and always
removes it on exit, also when starting it failed. Engine, image and emulation
problems become EnvironmentProblem with a hint saying what to run. Which Lambda
image to use is builder.docker.images' business; the default bridge's address is
builder.docker.network's.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import platform
import re
import sys
import tarfile
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import IO, Any

import docker
import docker.errors
from docker.models.containers import Container as SdkContainer
from requests.exceptions import RequestException

from builder.availability import Availability
from builder.errors import EnvironmentProblem
from builder.runtimes import arch_of_machine

OnLine = Callable[[str], None]

# Every image lambdakit builds to stand in for an official one carries this
# label; its value is "true" and sibling labels (org.lambdakit.standin.*) say
# what it fakes.
STANDIN_LABEL = "org.lambdakit.standin"
# On every container lambdakit creates, so leftovers can be found.
CONTAINER_LABEL = "org.lambdakit.container"

# A source build can compile for minutes without printing; the SDK's default
# 60 s read timeout would cut the stream.
API_TIMEOUT_S = 900

ENGINE_HINT = "start the Docker engine: scripts/ensure-docker.sh (Linux, as root) or Docker Desktop"
ARM64_HINT = (
    "register qemu for binfmt_misc: scripts/ensure-docker.sh --arm64 "
    "(apt-get install qemu-user-static binfmt-support; update-binfmts --enable qemu-aarch64)"
)

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _docker_arch(machine: str) -> str:
    facts = arch_of_machine(machine)
    return facts.docker_arch if facts else machine


def host_docker_arch() -> str:
    return _docker_arch(platform.machine())


def connect() -> docker.DockerClient:
    """A client for the engine DOCKER_HOST names (or the default socket), checked to answer."""
    try:
        client = docker.from_env(timeout=API_TIMEOUT_S)
        client.ping()
    except (docker.errors.DockerException, RequestException) as err:
        raise EnvironmentProblem(f"the Docker engine is not reachable ({err})", hint=ENGINE_HINT) from err
    return client


@dataclass(frozen=True, kw_only=True)
class ImageFacts:
    name: str
    id: str
    architecture: str  # as Docker names it: amd64, arm64
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def standin(self) -> bool:
        return self.labels.get(STANDIN_LABEL) == "true"

    def describe(self) -> str:
        if not self.standin:
            return self.name
        os_facts = self.labels.get(f"{STANDIN_LABEL}.os")
        return f"{self.name} (stand-in: {os_facts})" if os_facts else f"{self.name} (stand-in)"


def image_facts(client: docker.DockerClient, name: str) -> ImageFacts | None:
    try:
        image = client.images.get(name)
    except docker.errors.ImageNotFound:
        return None
    return ImageFacts(
        name=name,
        id=image.id,
        architecture=image.attrs.get("Architecture", ""),
        labels=image.labels or {},
    )


def emulation_availability(client: docker.DockerClient, docker_platform: str) -> Availability:
    """Whether the engine can run containers of this platform (natively or through qemu)."""
    wanted = docker_platform.split("/")[1]
    engine_arch = _docker_arch(client.info().get("Architecture", ""))
    if wanted == engine_arch:
        return Availability(ok=True, reason="native")
    if sys.platform != "linux" or not client.api.base_url.startswith("http+docker://localhost"):
        # Docker Desktop's VM (or a remote engine) does its own emulation;
        # this host's binfmt_misc says nothing about it.
        return Availability(ok=True, reason="emulation left to the engine")
    # qemu-user-static names its entries by the kernel's machine name: qemu-aarch64, qemu-x86_64.
    facts = arch_of_machine(wanted)
    entry = Path("/proc/sys/fs/binfmt_misc") / f"qemu-{facts.wheel_arch if facts else wanted}"
    try:
        text = entry.read_text()
    except OSError:
        text = ""
    # Flag F makes the kernel open the emulator at registration time, which is
    # what lets it run inside a container that does not contain qemu.
    flags = next((line.split(":", 1)[1] for line in text.splitlines() if line.startswith("flags:")), "")
    if text.startswith("enabled") and "F" in flags:
        return Availability(ok=True, reason=f"emulated through {entry.name}")
    return Availability(
        ok=False,
        reason=f"{docker_platform} containers on this {engine_arch} engine need qemu ({ARM64_HINT})",
    )


def import_rootfs(
    client: docker.DockerClient,
    tarball: Path,
    tag: str,
    docker_platform: str,
    labels: Mapping[str, str] | None = None,
) -> None:
    """`docker import` a root filesystem tarball as the image `tag`, of the given platform.

    Not through the import API: not every engine honours its platform parameter
    (20.10 records the engine's own architecture regardless), and a build for
    linux/arm64 then refuses the base. So the image is loaded instead, as a
    one-layer `docker save` archive whose config names the architecture.
    """
    os_name, arch = docker_platform.split("/")[:2]
    with tarball.open("rb") as data:
        layer = hashlib.file_digest(data, "sha256")
    config = json.dumps(
        {
            "architecture": arch,
            "os": os_name,
            "config": {"Labels": dict(labels or {})},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer.hexdigest()}"]},
            "history": [{"created_by": f"lambdakit: import {tarball.name}"}],
        }
    ).encode()
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": ["layer.tar"]}]).encode()
    with tempfile.TemporaryFile() as archive:
        with tarfile.open(fileobj=archive, mode="w") as tar:
            for name, text in ((config_name, config), ("manifest.json", manifest)):
                info = tarfile.TarInfo(name)
                info.size = len(text)
                tar.addfile(info, io.BytesIO(text))
            tar.add(tarball, arcname="layer.tar")
        archive.seek(0)
        try:
            for event in client.api.load_image(archive):
                if "error" in event:
                    raise EnvironmentProblem(f"docker load of {tarball.name} failed: {event['error']}")
        except docker.errors.APIError as err:
            raise EnvironmentProblem(f"docker load of {tarball.name} failed: {err.explanation}") from err


class LineBuffer:
    """Turns chunks of output into whole lines for a callback; `close` flushes the tail.

    Terminal colour codes are dropped (Docker paints a build's stderr red): the
    CLI decides how lines look.
    """

    def __init__(self, on_line: OnLine) -> None:
        self._on_line = on_line
        self._tail = ""

    def feed(self, text: str) -> None:
        *lines, self._tail = (self._tail + text).split("\n")
        for line in lines:
            self._emit(line)

    def close(self) -> None:
        if self._tail:
            self._emit(self._tail)
            self._tail = ""

    def _emit(self, line: str) -> None:
        self._on_line(_ANSI.sub("", line).rstrip("\r"))


@dataclass(frozen=True, kw_only=True)
class Mount:
    source: Path
    target: str
    read_only: bool = True

    @property
    def mode(self) -> str:
        return "ro" if self.read_only else "rw"


class Container:
    """One container: created on entry, removed on exit, whatever happened in between.

    The verbs are `run` (start, stream output, wait) and `copy_out` / `read_file`,
    which also work on a container that was never started or has exited.
    """

    def __init__(
        self,
        *,
        image: str,
        command: list[str],
        entrypoint: list[str] | None = None,
        docker_platform: str | None = None,
        mounts: Iterable[Mount] = (),
        environment: Mapping[str, str] | None = None,
        network: bool = False,
        client: docker.DockerClient | None = None,
    ) -> None:
        self.image = image
        self.name = f"lambdakit-{uuid.uuid4().hex[:12]}"
        self._create_args: dict[str, Any] = {
            "image": image,
            "command": command,
            "entrypoint": entrypoint,
            "platform": docker_platform,
            "environment": dict(environment or {}),
            "network_disabled": not network,
            "volumes": {str(m.source.resolve()): {"bind": m.target, "mode": m.mode} for m in mounts},
            "labels": {CONTAINER_LABEL: "true"},
            "name": self.name,
        }
        self._client = client
        self._container: SdkContainer | None = None

    def __enter__(self) -> Container:
        client = self._client or connect()
        try:
            self._container = client.containers.create(**self._create_args)
        except docker.errors.ImageNotFound as err:
            raise EnvironmentProblem(
                f"image {self.image} is not present", hint=f"docker pull {self.image}"
            ) from err
        except docker.errors.APIError as err:
            self._remove_by_name(client)
            message = f"could not create a container from {self.image}: {err.explanation}"
            raise EnvironmentProblem(message) from err
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._container is not None:
            # NotFound: already gone, so nothing is left behind.
            with contextlib.suppress(docker.errors.NotFound):
                self._container.remove(force=True, v=True)
            self._container = None

    def _remove_by_name(self, client: docker.DockerClient) -> None:
        # A failed create can still leave a container record behind.
        with contextlib.suppress(docker.errors.NotFound):
            client.containers.get(self.name).remove(force=True, v=True)

    @property
    def _live(self) -> SdkContainer:
        if self._container is None:
            raise RuntimeError("Container used outside its `with` block")
        return self._container

    def run(self, on_line: OnLine, *, timeout_s: float) -> tuple[int, bool]:
        """Start, stream stdout+stderr lines to on_line, wait. Returns (exit code, timed out)."""
        container = self._live
        try:
            container.start()
        except docker.errors.APIError as err:
            raise EnvironmentProblem(
                f"could not start a container from {self.image}: {err.explanation}",
                hint=_start_failure_hint(str(err.explanation)),
            ) from err
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            # APIError: it exited on its own meanwhile.
            with contextlib.suppress(docker.errors.APIError):
                container.kill()

        timer = threading.Timer(timeout_s, kill)
        timer.start()
        try:
            lines = LineBuffer(on_line)
            for chunk in container.logs(stream=True, follow=True):
                lines.feed(chunk.decode("utf-8", "replace"))
            lines.close()
            status = container.wait()
        finally:
            timer.cancel()
        return int(status.get("StatusCode", -1)), timed_out.is_set()

    def copy_out(self, source: str, dest: Path) -> None:
        """Copy the contents of directory `source` in the container into `dest`."""
        dest.mkdir(parents=True, exist_ok=True)
        prefix = PurePosixPath(source).name
        with self._archive(source) as tar:
            tar.extractall(dest, members=list(_strip_top(tar, prefix)), filter="data")

    def read_file(self, path: str) -> bytes | None:
        """The bytes of one file in the container, or None when it does not exist."""
        try:
            with self._archive(path) as tar:
                member = tar.next()
                handle = tar.extractfile(member) if member is not None else None
                return handle.read() if handle is not None else None
        except docker.errors.NotFound:
            return None

    @contextlib.contextmanager
    def _archive(self, path: str) -> Iterator[tarfile.TarFile]:
        stream, _ = self._live.get_archive(path)
        # Spooled: tarfile needs a seekable file, and a layer can be large.
        with tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024) as spool:
            for chunk in stream:
                spool.write(chunk)
            spool.seek(0)
            with tarfile.open(fileobj=spool, mode="r:") as tar:
                yield tar


def _strip_top(tar: tarfile.TarFile, prefix: str) -> Iterator[tarfile.TarInfo]:
    """get_archive wraps a directory in an entry named after it; drop that level."""
    for member in tar:
        name = PurePosixPath(member.name)
        if name.parts[:1] != (prefix,) or len(name.parts) == 1:
            continue
        member.name = str(PurePosixPath(*name.parts[1:]))
        yield member


def _start_failure_hint(explanation: str) -> str:
    if "exec format error" in explanation:
        return ARM64_HINT
    if "no such file or directory" in explanation or "executable file not found" in explanation:
        return "the image lacks the program lambdakit runs in it; is it the right image for this runtime?"
    return ""


def build_image(
    client: docker.DockerClient,
    *,
    context: IO[bytes] | Path,
    on_line: OnLine,
    dockerfile: str = "Dockerfile",
    tag: str | None = None,
    buildargs: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    docker_platform: str | None = None,
) -> tuple[str, bool]:
    """Build an image, streaming its output lines; returns (image id, every step came from cache).

    `context` is a directory or an uncompressed tar stream. The build runs on the
    host network: build steps fetch packages, and an engine started with
    --iptables=false gives the default bridge no route out.
    """
    args: dict[str, Any] = {
        "dockerfile": dockerfile,
        "tag": tag,
        "buildargs": dict(buildargs or {}),
        "labels": dict(labels or {}),
        "platform": docker_platform,
        "network_mode": "host",
        "rm": True,
        "forcerm": True,
        "pull": False,
        "decode": True,
    }
    if isinstance(context, Path):
        args["path"] = str(context)
    else:
        args.update(fileobj=context, custom_context=True)
    lines = LineBuffer(on_line)
    image_id = ""
    ran = False
    try:
        for event in client.api.build(**args):
            if "stream" in event:
                lines.feed(event["stream"])
                ran = ran or "Running in" in event["stream"]
            elif "error" in event:
                lines.close()
                detail = event.get("errorDetail", {}).get("message", event["error"]).strip()
                raise EnvironmentProblem(f"docker build failed: {detail}", hint=_build_failure_hint(detail))
            elif "aux" in event and "ID" in event["aux"]:
                image_id = event["aux"]["ID"]
    except docker.errors.APIError as err:
        hint = _build_failure_hint(str(err))
        raise EnvironmentProblem(f"docker build failed: {err.explanation}", hint=hint) from err
    lines.close()
    if not image_id:
        raise EnvironmentProblem("docker build finished without reporting an image id")
    return image_id, not ran


def _build_failure_hint(detail: str) -> str:
    if "exec format error" in detail:
        return ARM64_HINT
    if "pull access denied" in detail or "manifest unknown" in detail:
        return (
            "a base image is missing locally and cannot be pulled: docker pull it, "
            "or build the offline stand-ins with `lambdakit images build-standins`"
        )
    return ""
