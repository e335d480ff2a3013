"""arm64 layers import-checked on this machine, in the arm64 runtime image.

Here that image is lambdakit's stand-in: Debian 12's arm64 python3.11 linked at
/var/lang/bin, run through qemu-user-static. A pass proves the layer's layout
and that its aarch64 extension modules load in an arm64 CPython 3.11; glibc
compatibility with Lambda stays the static audit's job, as for every stand-in.
"""

from __future__ import annotations

import docker
import pytest

from builder.build import BuildOptions, BuildResult, build_layer
from builder.docker import container, standin
from builder.progress import Silent
from builder.runtimes import target
from builder.validate import validate_tree

# Resolves from the package index (tests/conftest.py).
pytestmark = pytest.mark.network

ARM64 = target("python3.11", "arm64")
X86_64 = target("python3.11", "x86_64")
LABEL = container.STANDIN_LABEL


@pytest.fixture(scope="session")
def arm64_wheel_layer(arm64_runtime_image: str, tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    """psycopg2-binary's aarch64 wheel, built by the pip backend, validated in the arm64 runtime image."""
    root = tmp_path_factory.mktemp("arm64")
    requirements = root / "requirements.txt"
    requirements.write_text("psycopg2-binary==2.9.11\n")
    options = BuildOptions(
        name="pg-arm64",
        requirements=requirements,
        target=ARM64,
        out=root / "out",
        backend="pip",
        import_check="runtime-image",
    )
    return build_layer(options, Silent())


def test_arm64_wheel_layer_is_valid_with_imports_checked_in_the_arm64_image(
    arm64_wheel_layer: BuildResult, docker_client: docker.DockerClient
) -> None:
    validation = arm64_wheel_layer.manifest.to_dict()["validation"]
    assert arm64_wheel_layer.verdict == "valid", validation
    imports = validation["imports"]  # type: ignore[index]
    assert imports["status"] == "passed" and imports["modules"] == {"psycopg2": None}, imports
    facts = container.image_facts(docker_client, ARM64.runtime_image)
    assert facts is not None and facts.architecture == "arm64"
    assert imports["where"] == f"image {facts.describe()}"
    if facts.standin:
        assert "arm64 under qemu" in imports["where"]


def test_arm64_layer_checked_as_x86_64_is_invalid(arm64_wheel_layer: BuildResult) -> None:
    report = validate_tree(arm64_wheel_layer.tree, X86_64, import_check="runtime-image").to_dict()
    assert report["verdict"] == "invalid"
    codes = {problem["code"] for problem in report["problems"]}  # type: ignore[attr-defined]
    assert {"arch-mismatch", "import-failed"} <= codes, report["problems"]
    imports = report["imports"]
    assert imports["where"].startswith(f"image {X86_64.runtime_image}")  # type: ignore[index]
    # The x86_64 CPython does not even look at an extension named *.cpython-311-aarch64-linux-gnu.so.
    assert imports["modules"] == {  # type: ignore[index]
        "psycopg2": "ModuleNotFoundError: No module named 'psycopg2._psycopg'"
    }


def test_arm64_runtime_standin_says_what_it_fakes_and_runs_arm64(
    arm64_runtime_image: str, docker_client: docker.DockerClient, standin_only: object
) -> None:
    standin_only(arm64_runtime_image)  # type: ignore[operator]
    facts = container.image_facts(docker_client, arm64_runtime_image)
    assert facts is not None and facts.standin and facts.architecture == "arm64"
    assert facts.labels[f"{LABEL}.fakes"] == arm64_runtime_image
    assert facts.labels[f"{LABEL}.os"] == "Debian 12 (bookworm), glibc 2.36, arm64 under qemu"
    assert facts.labels[f"{LABEL}.python"] == "Debian's python3.11 (bookworm, arm64)"
    assert "qemu" in facts.labels[f"{LABEL}.emulated"]
    script = (
        "set -e; uname -m; python3 --version; readlink -f /var/lang/bin/python3.11;"
        " test -x /var/runtime/bootstrap && echo bootstrap-ok;"
        " PYTHONPATH=/var/runtime python3 -c 'import awslambdaric, boto3; print(\"ric-ok\")'"
    )
    lines: list[str] = []
    with container.Container(
        image=arm64_runtime_image,
        entrypoint=["/bin/sh"],
        command=["-c", script],
        docker_platform=ARM64.arch.docker_platform,
        client=docker_client,
    ) as box:
        status, _ = box.run(lines.append, timeout_s=120)
    assert status == 0, lines
    assert lines[:3] == ["aarch64", lines[1], "/usr/bin/python3.11"] and lines[1].startswith("Python 3.11.")
    assert "bootstrap-ok" in lines and "ric-ok" in lines


def test_a_second_arm64_build_finds_the_standin_cached(
    arm64_runtime_image: str, docker_client: docker.DockerClient
) -> None:
    [again] = standin.build_standins([ARM64.runtime], kinds=["runtime"], arches=["arm64"], progress=Silent())
    assert again.image == arm64_runtime_image
    # Which of the two is knowable: the image under that name is a stand-in, or it is official.
    labels = docker_client.images.get(arm64_runtime_image).labels or {}
    if labels.get(container.STANDIN_LABEL) == "true":
        assert again.status == "cached"
    else:
        assert (again.status, again.detail) == ("skipped", "the official image is present")


def test_no_arm64_build_standin_is_offered(docker_client: docker.DockerClient) -> None:
    # Compiling under qemu is slow: arm64 layers come from wheels (the uv backend).
    _, skipped = standin.plan(("python3.11",), kinds=("build",), arches=("arm64",))
    assert [o.image for o in skipped] == [ARM64.build_image]
    assert "--backend uv" in skipped[0].detail
