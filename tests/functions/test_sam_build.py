"""`sam build` on the real template: lambdakit builds and validates the layer and function packages."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from harness import BIN, ROOT, run_sam

# `sam build` resolves from the package index (tests/conftest.py).
pytestmark = pytest.mark.network


def _lambdakit_validate(*args: str) -> dict:
    result = subprocess.run(
        [str(BIN / "lambdakit"), "validate", *args, "--runtime", "python3.12", "--arch", "x86_64", "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    report = json.loads(result.stdout)
    assert result.returncode == 0, json.dumps(report["problems"], indent=1) + result.stderr
    return report


def test_sam_build_gives_validated_layer_and_function_packages(tmp_path: Path) -> None:
    build_dir = tmp_path / "sam-build"
    result = run_sam("build", "--build-dir", str(build_dir))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Build Succeeded" in result.stdout

    layer = build_dir / "Psycopg2Layer"
    assert (layer / "python" / "psycopg2" / "__init__.py").is_file()
    assert _lambdakit_validate(str(layer))["imports"]["modules"] == {"psycopg2": None}

    api = _lambdakit_validate(str(build_dir / "ApiFunction"), "--function", "--layer", str(layer))
    expected = {"api", "taskdb", "fastapi", "pydantic_core", "mangum", "psycopg2"}
    assert expected <= set(api["imports"]["modules"])
    # pydantic-core is compiled: it must be the Linux build for the runtime, not the host's.
    api_binaries = list((build_dir / "ApiFunction" / "pydantic_core").glob("_pydantic_core.*.so"))
    assert [p.name for p in api_binaries] == ["_pydantic_core.cpython-312-x86_64-linux-gnu.so"]

    worker = _lambdakit_validate(str(build_dir / "WorkerFunction"), "--function", "--layer", str(layer))
    assert {"worker", "taskdb", "psycopg2"} <= set(worker["imports"]["modules"])
    # psycopg2 comes from the layer, not bundled into the worker's package.
    assert not (build_dir / "WorkerFunction" / "psycopg2").exists()
