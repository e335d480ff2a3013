"""Fixtures for the audit tests: tiny C libraries built with gcc, real wheels fetched once with pip."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("LAMBDAKIT_TEST_CACHE", REPO / ".cache" / "test-wheels"))

PSYCOPG2 = "psycopg2-binary==2.9.11"


@dataclass(frozen=True)
class WheelSpec:
    requirement: str
    platform: str
    python: str
    pattern: str


WHEELS = {
    "psycopg2-x86_64": WheelSpec(
        PSYCOPG2, "manylinux2014_x86_64", "3.12", "psycopg2_binary-2.9.11-cp312-cp312-manylinux*x86_64*.whl"
    ),
    "psycopg2-aarch64": WheelSpec(
        PSYCOPG2, "manylinux2014_aarch64", "3.12", "psycopg2_binary-2.9.11-cp312-cp312-manylinux*aarch64*.whl"
    ),
    "psycopg2-cp311": WheelSpec(
        PSYCOPG2, "manylinux2014_x86_64", "3.11", "psycopg2_binary-2.9.11-cp311-cp311-manylinux*x86_64*.whl"
    ),
    "psycopg2-macos": WheelSpec(
        PSYCOPG2, "macosx_11_0_arm64", "3.12", "psycopg2_binary-2.9.11-cp312-cp312-macosx_11_0_arm64.whl"
    ),
    "numpy-cp311": WheelSpec(
        "numpy==2.3.5", "manylinux_2_28_x86_64", "3.11", "numpy-2.3.5-cp311-cp311-*manylinux_2_28_x86_64.whl"
    ),
}


def _fetch(spec: WheelSpec) -> Path:
    found = sorted(CACHE.glob(spec.pattern))
    if not found:
        abi = "cp" + spec.python.replace(".", "")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "--platform", spec.platform, "--python-version", spec.python, "--implementation", "cp",
             "--abi", abi, spec.requirement, "-d", str(CACHE)],
            check=True,
        )  # fmt: skip
        found = sorted(CACHE.glob(spec.pattern))
    assert found, f"pip downloaded no file matching {spec.pattern} into {CACHE}"
    return found[0]


@pytest.fixture(scope="session")
def wheels() -> dict[str, Path]:
    """The real wheels the tests lay out, downloaded once and kept between runs."""
    CACHE.mkdir(parents=True, exist_ok=True)
    return {name: _fetch(spec) for name, spec in WHEELS.items()}


def unpack(wheel: Path, root: Path, under: str = "python") -> Path:
    """Lay a wheel out in a layer tree the way pip --target would, below `under`."""
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(root / under if under else root)
    return root


@dataclass(frozen=True)
class Compiler:
    """gcc for tiny shared libraries and executables; sources and stubs stay out of the layer."""

    work: Path

    def library(self, out: Path, source: str, *args: str) -> Path:
        return self._build(out, source, "-shared", "-fPIC", *args)

    def executable(self, out: Path, source: str, *args: str) -> Path:
        return self._build(out, source, *args)

    def needs(self, *sonames: str) -> list[str]:
        """Linker arguments giving the output a DT_NEEDED entry for each soname, via empty stubs."""
        stubs = self.work / "stubs"
        args = ["-Wl,--no-as-needed", f"-L{stubs}"]
        for soname in sonames:
            if not (stubs / soname).exists():
                self.library(stubs / soname, "void stub_unused(void) {}", f"-Wl,-soname,{soname}")
            args.append(f"-l:{soname}")
        return args

    def _build(self, out: Path, source: str, *args: str) -> Path:
        out.parent.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        src = self.work / f"{out.name}.c"
        src.write_text(source)
        result = subprocess.run(["gcc", "-o", str(out), str(src), *args], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return out


def patch_machine(path: Path, machine: int) -> None:
    """Rewrite e_machine, as if the library had been built for another CPU."""
    data = bytearray(path.read_bytes())
    data[18:20] = machine.to_bytes(2, "little")
    path.write_bytes(bytes(data))


EM_AARCH64 = 183


@pytest.fixture
def cc(tmp_path: Path) -> Compiler:
    return Compiler(tmp_path / "work")


@pytest.fixture
def layer(tmp_path: Path) -> Path:
    root = tmp_path / "layer"
    root.mkdir()
    return root
