"""Facts about this machine: its architecture, and the CPython builds it has."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

from builder.runtimes import arch_of_machine


def cache_root() -> Path:
    """Where lambdakit keeps what it can make again (stand-in roots, downloaded zips): LAMBDAKIT_CACHE,
    else ~/.cache/lambdakit. Shared by every clone of a project on this machine."""
    return Path(os.environ.get("LAMBDAKIT_CACHE") or Path.home() / ".cache" / "lambdakit")


def host_arch() -> str:
    """This machine's architecture by the catalogue's name (x86_64, arm64), else as the kernel says."""
    machine = platform.machine()
    facts = arch_of_machine(machine)
    return facts.name if facts else machine


def find_interpreter(version: str) -> Path | None:
    """A local CPython of exactly this minor version: pyenv's builds, then /usr/bin and /usr/local/bin."""
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
