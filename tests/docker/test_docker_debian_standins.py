"""Runtime stand-ins whose interpreter is a Debian suite's python: one target per such stand-in.

Where this machine has no CPython build to copy (arm64 here, and python3.14 on x86_64),
the stand-in is the suite the catalogue names for that Python: bullseye's 3.9, trixie's
3.13 and sid's 3.14 (bookworm's 3.11 is tests/docker/test_docker_arm64.py's). In each, a
good psycopg2 layer imports, and the seed's failure happens for real: the same package
built for another Python does not (`No module named 'psycopg2._psycopg'`).
"""

from __future__ import annotations

import docker
import pytest
from standin_targets import DEBIAN_STANDINS

from builder.build import BuildOptions, BuildResult, build_layer
from builder.docker import container
from builder.progress import Silent
from builder.runtimes import Target, debian_suite_name, target
from builder.verify.image import RuntimeImageChecker

# Resolves from the package index (tests/conftest.py).
pytestmark = pytest.mark.network

# The layer for "another Python" each is tried with: a release the stand-in's Python cannot load.
OTHER_PYTHON = {"python3.9": "python3.10", "python3.13": "python3.12", "python3.14": "python3.13"}


def _layer(tmp_path, t: Target, *, validate: bool) -> BuildResult:
    requirements = tmp_path / f"{t.runtime}-{t.arch.name}.txt"
    requirements.write_text("psycopg2-binary==2.9.11\n")
    options = BuildOptions(
        name="pg",
        requirements=requirements,
        target=t,
        out=tmp_path / f"{t.runtime}-{t.arch.name}",
        backend="uv",
        import_check="runtime-image",
        validate=validate,
    )
    return build_layer(options, Silent())


@pytest.mark.parametrize(("runtime", "arch"), DEBIAN_STANDINS)
def test_a_good_layer_imports_in_the_suites_python_and_another_pythons_does_not(
    runtime: str,
    arch: str,
    debian_standins: dict[tuple[str, str], Target],
    docker_client: docker.DockerClient,
    tmp_path,
) -> None:
    t = debian_standins[(runtime, arch)]
    facts = container.image_facts(docker_client, t.runtime_image)
    assert facts is not None and facts.architecture == t.arch.docker_platform.split("/")[1]
    good = _layer(tmp_path, t, validate=True)
    imports = good.manifest.to_dict()["validation"]["imports"]  # type: ignore[index]
    assert (good.verdict, imports["modules"]) == ("valid", {"psycopg2": None}), good.manifest.validation
    assert imports["where"] == f"image {facts.describe()}"
    if facts.standin:
        suite = debian_suite_name(t.debian_suite or "")
        assert imports["where"].startswith(f"image {t.runtime_image} (stand-in: {suite}, glibc ")
        assert imports["where"].endswith(", arm64 under qemu)") == (arch == "arm64")

    other = _layer(tmp_path, target(OTHER_PYTHON[runtime], arch), validate=False)
    result = RuntimeImageChecker().check(other.tree, t, ["psycopg2"])
    assert result.status == "failed"
    assert result.failures() == {"psycopg2": "ModuleNotFoundError: No module named 'psycopg2._psycopg'"}


@pytest.mark.parametrize(("runtime", "arch"), DEBIAN_STANDINS)
def test_the_standin_runs_the_runtime_interface_client_on_its_own_cpu(
    runtime: str,
    arch: str,
    debian_standins: dict[tuple[str, str], Target],
    docker_client: docker.DockerClient,
) -> None:
    t = debian_standins[(runtime, arch)]
    script = (
        "import platform, sys; sys.path.append('/var/runtime'); import awslambdaric, boto3; "
        "print(platform.machine(), '%d.%d' % sys.version_info[:2], sys.executable)"
    )
    lines: list[str] = []
    box = container.Container(
        image=t.runtime_image,
        entrypoint=[f"/var/lang/bin/python{t.version}"],
        command=["-c", script],
        docker_platform=t.arch.docker_platform,
        client=docker_client,
    )
    with box:
        status, timed_out = box.run(lines.append, timeout_s=180)
    assert (status, timed_out) == (0, False), lines
    assert lines[-1] == f"{t.arch.wheel_arch} {t.version} /var/lang/bin/python{t.version}"
