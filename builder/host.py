"""Facts about this machine: its architecture, and the CPython builds it has."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path


def host_arch() -> str:
    machine = platform.machine()
    return {"aarch64": "arm64", "arm64": "arm64", "x86_64": "x86_64", "AMD64": "x86_64"}.get(machine, machine)


def find_interpreter(version: str) -> Path | None:
    """A local CPython of exactly this minor version: pyenv's builds, then PATH."""
    candidates: list[Path] = []
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    versions = pyenv_root / "versions"
    if versions.is_dir():
        pattern = re.compile(rf"^{re.escape(version)}\.\d+$")
        builds = sorted(
            (d for d in versions.iterdir() if pattern.match(d.name)),
            key=lambda d: [int(part) for part in d.name.split(".")],
            reverse=True,
        )
        candidates += [d / "bin" / f"python{version}" for d in builds]
    for directory in ("/usr/bin", "/usr/local/bin"):
        candidates.append(Path(directory) / f"python{version}")
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None
