"""lambdakit installed from its own wheel into a fresh venv, run from a folder that is not this checkout.

Nothing of the checkout is on the path: the data files (the runtime catalogue, the base
libraries, Dockerfile.build, the stand-in recipes) must have travelled in the wheel.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from builder.backends.uv import uv_binary
from builder.host import host_arch
from builder.runtimes import target

# Resolves from the package index (tests/conftest.py).
pytestmark = pytest.mark.network

REPO = Path(__file__).resolve().parents[2]
TARGET = target("python3.12", host_arch())
# What the wheel must carry beside the code: a wheel without one of them fails only when it is used.
DATA_FILES = (
    "runtimes.json", "base-libraries.json", "Dockerfile.build", "localstack-init.py",
    "recipes/psycopg2.txt", "recipes/psycopg.txt",
)  # fmt: skip


@pytest.fixture(scope="module")
def lambdakit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `lambdakit` script of a fresh venv that has only the built wheel and what it requires."""
    work = tmp_path_factory.mktemp("installed")
    # A copy of the source, so the wheel build writes nothing into the checkout.
    source = work / "source"
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in listed.decode().split("\0"):
        if name and (REPO / name).exists():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name, follow_symlinks=False)
    dist = work / "dist"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(source)]
    subprocess.run(build, check=True, timeout=600)
    [wheel] = dist.glob("lambdakit-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {f"builder/data/{name}" for name in DATA_FILES} <= names
    assert any(name.startswith("builder/data/standin/") for name in names)
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    install = [uv_binary(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), str(wheel)]
    subprocess.run(install, check=True, timeout=900)
    return venv / "bin" / "lambdakit"


def _run(lambdakit: Path, cwd: Path, *argv: str) -> tuple[int, dict]:
    proc = subprocess.run(
        [str(lambdakit), *argv, "--json"], cwd=cwd, capture_output=True, text=True, timeout=900
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_the_installed_wheel_is_the_one_running(lambdakit: Path, tmp_path: Path) -> None:
    where = subprocess.run(
        [str(lambdakit.parent / "python"), "-c", "import builder; print(builder.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert where.startswith(str(lambdakit.parent.parent)), where
    assert not where.startswith(str(REPO))


@pytest.mark.parametrize("backend", ["docker", "uv", "pip"])
def test_build_layer_and_validate_from_an_unrelated_folder(
    lambdakit: Path, tmp_path: Path, backend: str
) -> None:
    (tmp_path / "requirements.txt").write_text("six==1.16.0\n")
    target_options = ("--runtime", TARGET.runtime, "--arch", TARGET.arch.name)
    code, built = _run(lambdakit, tmp_path, "build-layer", "deps", "-r", "requirements.txt",
                       "--backend", backend, *target_options, "--out", "out")  # fmt: skip
    assert code == 0, built
    assert (built["status"], built["manifest"]["backend"]) == ("built", backend)
    assert built["manifest"]["validation"]["verdict"] == "valid"
    if backend == "docker":
        # Dockerfile.build came out of the installed wheel: the build ran in the build image.
        assert built["backend_reason"].startswith("docker, as asked: ")
    code, report = _run(lambdakit, tmp_path, "validate", "out/deps", *target_options)
    assert (code, report["verdict"]) == (0, "valid")
    assert report["imports"]["modules"] == {"six": None}


def test_images_list_from_an_unrelated_folder(lambdakit: Path, tmp_path: Path) -> None:
    code, listed = _run(lambdakit, tmp_path, "images", "list")
    assert code == 0, listed
    present = {row["image"] for row in listed["images"] if row["present"]}
    # The session's stand-ins (tests/docker/conftest.py) are there, seen through the installed copy.
    assert {TARGET.runtime_image, TARGET.build_image} <= present


def test_the_built_in_recipes_work_from_the_installed_copy(lambdakit: Path, tmp_path: Path) -> None:
    code, listed = _run(lambdakit, tmp_path, "layers")
    assert code == 0, listed
    assert {"psycopg2", "psycopg"} <= {row["name"] for row in listed["layers"] if row["source"] == "built-in"}
    code, built = _run(lambdakit, tmp_path, "build-layer", "psycopg2", "--backend", "uv",
                       "--runtime", TARGET.runtime, "--arch", TARGET.arch.name, "--out", "out")  # fmt: skip
    assert code == 0, built
    assert built["requirements"]["source"] == "built-in"
    assert built["manifest"]["packages"]["psycopg2-binary"] == "2.9.11"
