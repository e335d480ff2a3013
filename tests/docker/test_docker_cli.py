"""The Docker backend through the whole pipeline and the real command, and `--backend auto` with an engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from lookalike import LOOKALIKE, Lookalike

from builder.build import choose_backend
from builder.host import host_arch
from builder.runtimes import target

# Resolves from the package index (tests/conftest.py).
pytestmark = pytest.mark.network

TARGET = target("python3.12", host_arch())


def _build_layer(tmp_path: Path, line: str, *options: str) -> tuple[int, dict]:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(line + "\n")
    argv = [sys.executable, "-m", "builder", "build-layer", "pg", "-r", str(requirements),
            "--runtime", TARGET.runtime, "--arch", TARGET.arch.name, "--out", str(tmp_path / "out"),
            "--json", *options]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_a_source_build_with_the_docker_backend_is_published_valid_and_then_up_to_date(
    tmp_path: Path,
) -> None:
    # psycopg2 from source: only the build image can compile it (against libpq, bundled into lib/).
    code, built = _build_layer(tmp_path, "psycopg2==2.9.10", "--backend", "docker")
    assert code == 0, built
    assert (built["status"], built["ok"], built["manifest"]["validation"]["verdict"]) == (
        "built",
        True,
        "valid",
    )
    assert built["backend_reason"].startswith("docker, as asked: ")
    manifest = built["manifest"]
    assert (manifest["backend"], manifest["packages"]) == ("docker", {"psycopg2": "2.9.10"})
    imports = manifest["validation"]["imports"]
    assert imports["modules"] == {"psycopg2": None}
    assert imports["where"].startswith(f"image {TARGET.runtime_image}")
    published = tmp_path / "out" / "pg"
    assert (published / "tree" / "lib" / "libpq.so.5").is_file()
    assert json.loads((published / "layer.json").read_text())["zip"]["sha256"] == manifest["zip"]["sha256"]

    code, again = _build_layer(tmp_path, "psycopg2==2.9.10", "--backend", "docker")
    assert (code, again["status"]) == (0, "up-to-date")


def test_auto_with_only_a_standin_build_image_uses_uv_and_says_so(tmp_path: Path) -> None:
    code, built = _build_layer(tmp_path, "six==1.16.0", "--backend", "auto")
    assert code == 0, built
    assert built["manifest"]["backend"] == "uv"
    assert (
        built["backend_reason"]
        == "uv, because docker is not used: only an offline stand-in of the build image is present"
    )


def test_auto_with_an_official_build_image_chooses_docker(official_lookalike: Lookalike) -> None:
    backend, reason = choose_backend("auto", LOOKALIKE)
    assert backend.name == "docker"
    assert reason.startswith("docker: ") and "stand-in" not in reason
