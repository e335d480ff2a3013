"""The container wrapper: it never leaves a container behind, and says what is missing."""

from __future__ import annotations

import dataclasses

import docker
import pytest

from builder import container
from builder.backends.docker import BACKEND, RuntimeImageChecker
from builder.errors import EnvironmentProblem
from builder.runtimes import target
from builder.verify import host_arch


def test_a_container_that_cannot_start_is_removed(docker_client: docker.DockerClient) -> None:
    image = target("python3.12", host_arch()).runtime_image
    box = container.Container(image=image, entrypoint=["/no/such/program"], command=[], client=docker_client)
    with pytest.raises(EnvironmentProblem, match="could not start"), box:
        assert docker_client.containers.list(all=True, filters={"name": box.name})
        box.run(lambda line: None, timeout_s=30)
    assert not docker_client.containers.list(all=True, filters={"name": box.name})


def test_a_missing_image_names_the_pull_and_the_standin(docker_client: docker.DockerClient) -> None:
    t = dataclasses.replace(
        target("python3.12", host_arch()),
        runtime_image="lambdakit/no-such-image:1",
        build_image="lambdakit/no-such-image:2",
    )
    for availability in (RuntimeImageChecker().available(t), BACKEND.available(t)):
        assert not availability.ok
        assert "docker pull lambdakit/no-such-image" in availability.reason
        assert "lambdakit images build-standins" in availability.reason


def test_a_run_past_its_timeout_is_killed(docker_client: docker.DockerClient) -> None:
    image = target("python3.12", host_arch()).runtime_image
    with container.Container(image=image, entrypoint=["sleep"], command=["60"], client=docker_client) as box:
        _, timed_out = box.run(lambda line: None, timeout_s=1)
    assert timed_out
