"""The psycopg2 layer for all twelve targets in one command, with every proof this machine kind can give.

x86_64 python3.9 to 3.13 are proven in pyenv's CPython builds or the stand-in images,
python3.14 and arm64 3.9, 3.11, 3.13 and 3.14 in the Debian stand-ins (arm64 under
qemu). arm64 python3.10 and 3.12 have no interpreter here: no Debian suite ships them,
and only this machine's architecture has local builds. Those two say so, never pass.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from builder import runtimes
from builder.errors import EXIT_NOT_VERIFIED

# Resolves from the package index (tests/conftest.py).
pytestmark = pytest.mark.network

ROOT = Path(__file__).resolve().parents[2]
UNPROVABLE = {("python3.10", "arm64"), ("python3.12", "arm64")}


@pytest.mark.usefixtures("debian_standins", "arm64_runtime_image")
def test_the_matrix_proves_ten_of_twelve_targets_and_says_why_not_for_the_other_two(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "builder", "build-layer", "psycopg2", "-r",
            str(ROOT / "layers" / "psycopg2" / "requirements.txt"), "--runtime", "all", "--arch", "all",
            "--out", str(tmp_path / "out"), "--json"]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    assert proc.returncode == EXIT_NOT_VERIFIED, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = {(t["runtime"], t["arch"]): t for t in json.loads(proc.stdout)["targets"]}
    assert list(rows) == [(t.runtime, t.arch.name) for t in runtimes.all_targets()]
    for (runtime, arch), row in rows.items():
        t = runtimes.target(runtime, arch)
        if (runtime, arch) in UNPROVABLE:
            assert row["verdict"] == "not-verified"
            assert row["where"] == (
                f"not verified: runtime-image: image {t.runtime_image} is not present (docker pull "
                f"{t.runtime_image}; no offline stand-in of it can be built here); "
                "interpreter: this machine is x86_64, the layer is for arm64"
            )
        else:
            assert row["verdict"] == "valid", row
            assert row["where"].startswith((f"image {t.runtime_image}", "local interpreter ")), row["where"]
            assert f"python{t.version}" in row["where"] or f":{t.version}-" in row["where"]
        manifest = json.loads((Path(row["path"]) / "layer.json").read_text())
        assert (manifest["runtime"], manifest["arch"], manifest["packages"]) == (
            runtime,
            arch,
            {"psycopg2-binary": "2.9.11"},
        )
