"""`--backend auto` chooses a backend and says why, in the result and on the terminal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from builder.cli.main import cli

# Resolves from the package index (tests/conftest.py).
pytestmark = pytest.mark.network


def test_auto_without_a_docker_engine_uses_uv_and_says_the_engine_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six==1.16.0\n")
    argv = ["build-layer", "s", "-r", str(requirements), "--out", str(tmp_path / "out"), "--backend", "auto",
            "--import-check", "interpreter"]  # fmt: skip
    result = CliRunner().invoke(cli, [*argv, "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["manifest"]["backend"] == "uv"
    assert document["backend_reason"].startswith(
        "uv, because docker is not used: the Docker engine is not reachable ("
    )
    assert document["backend_reason"].endswith(
        "start the Docker engine: scripts/ensure-docker.sh (Linux, as root) or Docker Desktop"
    )
    text = CliRunner().invoke(cli, [*argv, "--force"])
    assert text.exit_code == 0, text.output
    assert "  backend: uv, because docker is not used: the Docker engine is not reachable" in text.output
