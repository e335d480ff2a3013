"""The container wrapper: it never leaves a container behind, and says what is missing."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

from builder.backends.docker import BACKEND
from builder.docker import container
from builder.errors import EnvironmentProblem
from builder.host import host_arch
from builder.runtimes import target
from builder.verify.image import RuntimeImageChecker


def test_a_container_that_cannot_start_is_removed(docker_client: docker.DockerClient) -> None:
    image = target("python3.12", host_arch()).runtime_image
    box = container.Container(image=image, entrypoint=["/no/such/program"], command=[], client=docker_client)
    with pytest.raises(EnvironmentProblem, match="could not start"), box:
        assert docker_client.containers.list(all=True, filters={"name": box.name})
        box.run(lambda line: None, timeout_s=30)
    assert not docker_client.containers.list(all=True, filters={"name": box.name})


def test_a_missing_image_names_the_pull_and_that_no_standin_exists(
    docker_client: docker.DockerClient,
) -> None:
    t = dataclasses.replace(
        target("python3.12", host_arch()),
        runtime_image="lambdakit/no-such-image:1",
        build_image="lambdakit/no-such-image:2",
    )
    for availability in (RuntimeImageChecker().available(t), BACKEND.available(t)):
        assert not availability.ok
        assert "docker pull lambdakit/no-such-image" in availability.reason
        assert "no offline stand-in of it can be built here" in availability.reason


def test_a_run_past_its_timeout_is_killed(docker_client: docker.DockerClient) -> None:
    image = target("python3.12", host_arch()).runtime_image
    with container.Container(image=image, entrypoint=["sleep"], command=["60"], client=docker_client) as box:
        _, timed_out = box.run(lambda line: None, timeout_s=1)
    assert timed_out


def test_sigterm_during_the_image_import_check_removes_its_container(
    docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    """The check imports a module that never returns; lambdakit is stopped with SIGTERM meanwhile."""
    layer = tmp_path / "layer" / "python"
    layer.mkdir(parents=True)
    (layer / "stuck.py").write_text("import time\nwhile True:\n    time.sleep(1)\n")
    label = {"label": container.CONTAINER_LABEL}
    before = {c.id for c in docker_client.containers.list(all=True, filters=label)}
    argv = [sys.executable, "-m", "builder", "validate", str(layer.parent), "--runtime", "python3.12",
            "--arch", host_arch(), "--import-check", "runtime-image"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not {c.id for c in docker_client.containers.list(filters=label)} - before:
        assert time.monotonic() < deadline and proc.poll() is None, "the import check never started"
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert {c.id for c in docker_client.containers.list(all=True, filters=label)} - before == set()
