"""An image that lambdakit takes for an official Lambda image: an official name, no stand-in label."""

from __future__ import annotations

import contextlib
import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass

import docker
import docker.errors

from builder.docker import standin
from builder.host import host_arch
from builder.runtimes import target

# The official name the look-alike takes. No test or fixture uses this image: the docker
# conftest builds python3.11 and python3.12 stand-ins, LocalStack's standins runtime images
# only, and the build backends of other tests pick python3.11, 3.12 or the uv/pip backends.
# The image the name pointed at before (if any) is put back afterwards.
LOOKALIKE = target("python3.13", host_arch())
LOOKALIKE_KIND: standin.Kind = "build"
TEST_LABEL = "org.lambdakit.test"


@dataclass(frozen=True)
class Lookalike:
    name: str
    image_id: str


def tiny_image(client: docker.DockerClient) -> str:
    """An image from scratch with one file: built locally, no registry, no stand-in label."""
    fileobj = io.BytesIO()
    with tarfile.open(fileobj=fileobj, mode="w") as tar:
        for name, text in (
            ("Dockerfile", "FROM scratch\nCOPY hello.txt /hello.txt\n"),
            ("hello.txt", "an official image, as far as lambdakit can tell\n"),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    fileobj.seek(0)
    image, _ = client.images.build(
        fileobj=fileobj, custom_context=True, labels={TEST_LABEL: "official-lookalike"}, rm=True, pull=False
    )
    assert image.id is not None
    return image.id


@contextlib.contextmanager
def official_lookalike(docker_client: docker.DockerClient) -> Iterator[Lookalike]:
    """LOOKALIKE's build image name on an image without the stand-in label; the old tag restored after."""
    name = standin.image_name(LOOKALIKE, LOOKALIKE_KIND)
    repository, tag = name.rsplit(":", 1)
    try:
        before: str | None = docker_client.images.get(name).id
    except docker.errors.ImageNotFound:
        before = None
    image_id = tiny_image(docker_client)
    docker_client.images.get(image_id).tag(repository, tag)
    try:
        yield Lookalike(name=name, image_id=image_id)
    finally:
        if before is not None:
            # Moves the name back; the look-alike is left untagged and removed below.
            docker_client.images.get(before).tag(repository, tag)
        else:
            docker_client.images.remove(name)
        # Gone already when removing the name deleted it (its only tag).
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(image_id)
