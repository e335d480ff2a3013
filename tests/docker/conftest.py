"""Tests in real containers: they need a Docker engine, and build the offline stand-ins once.

Without an engine every test here FAILS with the reason (start one with
scripts/ensure-docker.sh); they are marked `docker` (tests/conftest.py): `pytest -m "not docker"`
leaves them out on purpose.
The first run builds the stand-in images (root and debootstrap needed, minutes);
later runs find them cached, and Docker's build cache makes the layer builds quick.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import lookalike
import pytest
from lookalike import Lookalike
from standin_targets import DEBIAN_STANDINS

from builder.backends import Resolved, ResolveRequest
from builder.backends.docker import BACKEND
from builder.docker import container, standin
from builder.errors import EnvironmentProblem
from builder.host import host_arch
from builder.progress import Silent
from builder.requirements import read_requirements
from builder.runtimes import Target, target
from builder.units import megabytes

RUNTIMES = ("python3.11", "python3.12")
# An Outcome's detail when an official image is present under the stand-in's name.
OFFICIAL_PRESENT = "the official image is present"
SIZES = pytest.StashKey[dict[str, dict[str, int]]]()


@pytest.fixture(scope="session", autouse=True)
def docker_client() -> docker.DockerClient:
    try:
        return container.connect()
    except EnvironmentProblem as err:
        reason = f"{err.message}. To {err.hint}"
    # Failed outside the except block, so the report is this message, not a chain of tracebacks.
    pytest.fail(
        f"these tests need a Docker engine: {reason}. Or run with -m 'not docker' to leave them out.",
        pytrace=False,
    )


@pytest.fixture(scope="session", autouse=True)
def standins(docker_client: docker.DockerClient) -> list[standin.Outcome]:
    outcomes = standin.build_standins(RUNTIMES, progress=Silent())
    skipped = [o for o in outcomes if o.status == "skipped" and o.detail != OFFICIAL_PRESENT]
    assert not skipped, f"stand-ins that could not be built: {skipped}"
    return outcomes


@pytest.fixture(scope="session")
def arm64_runtime_image(docker_client: docker.DockerClient) -> str:
    """The python3.11 arm64 runtime image: official, or the stand-in built here (cached between runs).

    On an x86_64 machine the stand-in is Debian's arm64 python3.11 run through
    qemu; without qemu registered this fails, saying how to register it.
    """
    t = target("python3.11", "arm64")
    outcomes = standin.build_standins((t.runtime,), kinds=("runtime",), arches=("arm64",), progress=Silent())
    problems = [o.detail for o in outcomes if o.status == "skipped" and o.detail != OFFICIAL_PRESENT]
    if problems:
        pytest.fail(f"the arm64 runtime stand-in could not be built: {'; '.join(problems)}", pytrace=False)
    return t.runtime_image


@pytest.fixture(scope="session")
def standin_only(docker_client: docker.DockerClient) -> Callable[[str], None]:
    """For tests of a stand-in's own traits: skips when the official image is present instead."""

    def check(image: str) -> None:
        facts = container.image_facts(docker_client, image)
        if facts is not None and not facts.standin:
            pytest.skip(f"the official {image} is present; this test is about the stand-in")

    return check


RunIn = Callable[[str, list[str]], tuple[int, list[str]]]


@pytest.fixture(scope="session")
def run_in(docker_client: docker.DockerClient) -> RunIn:
    """Runs argv in a fresh container of an image, without network: (exit status, output lines)."""

    def run(image: str, argv: list[str]) -> tuple[int, list[str]]:
        lines: list[str] = []
        box = container.Container(image=image, entrypoint=argv[:1], command=argv[1:], client=docker_client)
        with box:
            status, timed_out = box.run(lines.append, timeout_s=120)
        assert not timed_out
        return status, lines

    return run


def build(tmp_root: Path, requirement: str, runtime: str) -> tuple[Path, Resolved, Target]:
    """A layer tree built by the Docker backend for a requirements text (one line or more).

    For the host's architecture: that is the one the stand-ins are built for.
    """
    t = target(runtime, host_arch())
    requirements = tmp_root / "requirements.txt"
    requirements.write_text(requirement + "\n")
    staging = tmp_root / "layer"
    staging.mkdir()
    request = ResolveRequest(requirements=read_requirements(requirements), target=t, staging=staging)
    resolved = BACKEND.resolve(request, Silent())
    return staging, resolved, t


@pytest.fixture
def build_layer_in_docker(tmp_path: Path) -> Callable[[str, str], tuple[Path, Resolved, Target]]:
    """Builds a requirements text with the Docker backend for a runtime on this machine's arch."""
    return lambda requirements, runtime: build(tmp_path, requirements, runtime)


@pytest.fixture(scope="session")
def binary_layer_312(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Resolved, Target]:
    return build(tmp_path_factory.mktemp("binary312"), "psycopg2-binary==2.9.11", "python3.12")


@pytest.fixture(scope="session")
def source_layer_312(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Resolved, Target]:
    return build(tmp_path_factory.mktemp("source312"), "psycopg2==2.9.10", "python3.12")


@pytest.fixture(scope="session")
def source_layer_311(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Resolved, Target]:
    return build(tmp_path_factory.mktemp("source311"), "psycopg2==2.9.10", "python3.11")


@pytest.fixture
def copy_of(tmp_path: Path) -> Callable[[Path], Path]:
    def copy(tree: Path) -> Path:
        dest = tmp_path / tree.name
        shutil.copytree(tree, dest, symlinks=True)
        return dest

    return copy


@pytest.fixture
def layer_sizes(request: pytest.FixtureRequest) -> dict[str, dict[str, int]]:
    """Sizes a test records here are printed at the end of the session."""
    return request.config.stash.setdefault(SIZES, {})


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    sizes = terminalreporter.config.stash.get(SIZES, {})
    if not sizes:
        return
    terminalreporter.section("psycopg2 layer sizes (python3.12, Docker backend)")
    for name, size in sizes.items():
        terminalreporter.write_line(
            f"{name:<28} {megabytes(size['unzipped']):>9} unzipped  {megabytes(size['zipped']):>8} zipped"
        )


@pytest.fixture
def official_lookalike(docker_client: docker.DockerClient) -> Iterator[Lookalike]:
    """python3.13's build image name on an image without the stand-in label, for one test."""
    with lookalike.official_lookalike(docker_client) as made:
        yield made


@pytest.fixture(scope="session")
def debian_standins(docker_client: docker.DockerClient) -> dict[tuple[str, str], Target]:
    if host_arch() != "x86_64" or standin.python_prefix("3.14") is not None:
        pytest.fail("DEBIAN_STANDINS describes x86_64 machines without a local 3.14; write this one's down")
    built = {}
    for arch in ("arm64", "x86_64"):
        runtimes = [r for r, a in DEBIAN_STANDINS if a == arch]
        outcomes = standin.build_standins(runtimes, kinds=("runtime",), arches=(arch,), progress=Silent())
        failed = [
            o for o in outcomes if o.status == "skipped" and o.detail != "the official image is present"
        ]
        assert not failed, f"stand-ins that could not be built: {failed}"
        built |= {(r, arch): target(r, arch) for r in runtimes}
    return built
