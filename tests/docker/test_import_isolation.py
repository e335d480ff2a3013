"""The runtime-image import check runs the layer read-only at /opt and without network.

README, "validate": every top-level module is imported in the runtime image "with
the layer read-only at /opt and no network". A module that writes into the layer or
opens a connection while it is imported must fail the check (and so the layer),
never change the layer on this machine, never reach anything. The controls show the
failures come from those two restrictions: the same import writes to /tmp, and the
same connection succeeds from a container that has a network.

The image is the python3.12 runtime image of this machine's architecture: official
when present, else the stand-in that conftest builds (cached between runs).
"""

from __future__ import annotations

import ipaddress
import json
import select
import socket
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from click.testing import CliRunner

from builder.cli.main import cli
from builder.docker import container, images, network
from builder.docker.network import Bridge
from builder.errors import EnvironmentProblem
from builder.host import host_arch
from builder.runtimes import Target, target

RUNTIME = "python3.12"


@pytest.fixture(scope="module")
def runtime(standins: list) -> Target:
    return target(RUNTIME, host_arch())


@pytest.fixture(scope="module")
def where(docker_client: docker.DockerClient, runtime: Target) -> str:
    """What the report names as the place the check ran."""
    return f"image {images.require_image(docker_client, runtime.runtime_image).describe()}"


@pytest.fixture(scope="module")
def bridge(docker_client: docker.DockerClient) -> Bridge:
    """This host's address on Docker's default bridge: what a container with network can reach."""
    try:
        return network.default_bridge(docker_client)
    except EnvironmentProblem as err:
        pytest.fail(f"{err.message} ({err.hint})", pytrace=False)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP server on every address of this host, never accepting by itself.

    A connection that reaches it completes in the kernel and waits in the backlog, so
    `_pending` tells afterwards whether anything arrived, with no thread and no sleep.
    """
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", 0))
    server.listen(8)
    try:
        yield server
    finally:
        server.close()


def _pending(server: socket.socket) -> bool:
    readable, _, _ = select.select([server], [], [], 0)
    return bool(readable)


def _validate(layer: Path, runtime: Target) -> tuple[int, dict]:
    argv = ["validate", str(layer), "--runtime", runtime.runtime, "--arch", runtime.arch.name,
            "--import-check", "runtime-image", "--json"]  # fmt: skip
    result = CliRunner().invoke(cli, argv)
    assert "Traceback" not in result.output
    return result.exit_code, json.loads(result.output)


def _problems(report: dict) -> list[tuple[str, str, str, str]]:
    return sorted((p["code"], p["path"], p["message"], p["severity"]) for p in report["problems"])


def _dialing_layer(root: Path, bridge: Bridge, port: int) -> Path:
    python = root / "python"
    python.mkdir(parents=True)
    (python / "dials_host.py").write_text(
        f"import socket\nsocket.create_connection(({bridge.address!r}, {port}), timeout=10).close()\n"
    )
    return root


def test_a_module_writing_under_opt_at_import_fails_read_only_and_the_layer_is_unchanged(
    tmp_path: Path, runtime: Target, where: str
) -> None:
    layer = tmp_path / "layer"
    python = layer / "python"
    python.mkdir(parents=True)
    # Into the layer's sys.path folder and into /opt itself (the mount's root).
    writes = {"writes_opt_python": "/opt/python/written-at-import", "writes_opt": "/opt/written-at-import"}
    for module, path in writes.items():
        (python / f"{module}.py").write_text(f"open({path!r}, 'w').write('x')\n")
    # Control: the container's own file system is writable, so the failures are /opt's.
    (python / "writes_tmp.py").write_text("open('/tmp/written-at-import', 'w').write('x')\n")
    before = sorted(p.relative_to(layer) for p in layer.rglob("*"))

    code, report = _validate(layer, runtime)

    errors = {
        module: f"OSError: [Errno 30] Read-only file system: {path!r}" for module, path in writes.items()
    }
    assert code == 1
    assert report["verdict"] == "invalid"
    assert report["imports"]["where"] == where
    assert report["imports"]["modules"] == {**errors, "writes_tmp": None}
    assert _problems(report) == sorted(
        ("import-failed", module, f"import {module} failed in {where}: {error}", "error")
        for module, error in errors.items()
    )
    assert sorted(p.relative_to(layer) for p in layer.rglob("*")) == before


def test_a_module_connecting_to_the_host_at_import_fails_unreachable_and_nothing_arrives(
    tmp_path: Path, runtime: Target, where: str, bridge: Bridge, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    # The listener answers on the bridge address from this host: the import below fails for the
    # container's want of a network, not for want of a server.
    with socket.create_connection((bridge.address, port), timeout=5):
        pass
    assert _pending(listener)
    listener.accept()[0].close()
    assert not _pending(listener)

    code, report = _validate(_dialing_layer(tmp_path / "layer", bridge, port), runtime)

    error = "OSError: [Errno 101] Network is unreachable"
    assert code == 1
    assert report["verdict"] == "invalid"
    assert report["imports"]["modules"] == {"dials_host": error}
    assert _problems(report) == [
        ("import-failed", "dials_host", f"import dials_host failed in {where}: {error}", "error")
    ]
    assert not _pending(listener)


def test_the_same_module_reaches_the_listener_from_a_container_with_network(
    tmp_path: Path,
    docker_client: docker.DockerClient,
    runtime: Target,
    bridge: Bridge,
    listener: socket.socket,
) -> None:
    """Control: the address and port the previous test dials are reachable from a container
    on the default bridge, so only the check's disabled network stopped that import."""
    layer = _dialing_layer(tmp_path / "layer", bridge, listener.getsockname()[1])
    python = f"/var/lang/bin/python{runtime.version}"
    lines: list[str] = []
    box = container.Container(
        image=runtime.runtime_image,
        entrypoint=[python],
        command=["-I", "-c", "import sys; sys.path.insert(0, '/opt/python'); import dials_host"],
        docker_platform=runtime.arch.docker_platform,
        mounts=[container.Mount(source=layer, target="/opt")],
        network=True,
        client=docker_client,
    )
    with box:
        status, timed_out = box.run(lines.append, timeout_s=60)
    assert (status, timed_out) == (0, False), lines
    assert _pending(listener)
    connection, (peer, _) = listener.accept()
    connection.close()
    # From a container's address on the bridge, not from this host's.
    assert ipaddress.ip_address(peer) in ipaddress.ip_network(bridge.subnet) and peer != bridge.address


def test_the_runtimes_own_boto3_imports_and_a_layers_module_comes_before_it(
    tmp_path: Path, runtime: Target, where: str
) -> None:
    # Lambda puts /var/runtime (boto3, awslambdaric) on sys.path after the layer: a layer may
    # import boto3 without shipping it, and a module the layer ships wins over the runtime's.
    python = tmp_path / "python"
    python.mkdir()
    (python / "uses_boto3.py").write_text("import boto3, botocore\n")
    (python / "awslambdaric.py").write_text("raise RuntimeError('the layer shadows the runtime client')\n")
    code, report = _validate(tmp_path, runtime)
    assert code == 1, report
    assert report["imports"]["modules"] == {
        "awslambdaric": "RuntimeError: the layer shadows the runtime client",
        "uses_boto3": None,
    }
    assert report["imports"]["where"] == where
