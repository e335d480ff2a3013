"""The import check: load every top-level module of a layer in the runtime's Python.

Checkers are tried in order of fidelity; the first available one runs. When none
can run, the result is "not-verified", which is never counted as a pass.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from builder.availability import Availability
from builder.layout import LIB_DIR, sys_path_dirs
from builder.runtimes import Target

ImportStatus = Literal["passed", "failed", "not-verified"]
# Where the import check may run: "auto" takes the most faithful checker available.
ImportCheckChoice = Literal["auto", "runtime-image", "interpreter"]
IMPORT_CHECK_CHOICES: tuple[ImportCheckChoice, ...] = ("auto", "runtime-image", "interpreter")

IMPORT_TIMEOUT_S = 300

# Runs inside the checked interpreter: imports each module and writes one JSON
# object {module: null | "ExcType: message"} to the file named in argv[1], so a
# module that prints on import cannot corrupt the result. The file is rewritten
# after each module: when the check times out, the first module missing from it
# is the one whose import hangs.
IMPORT_SCRIPT = r"""
import importlib, json, os, sys
out, paths, modules = sys.argv[1], sys.argv[2].split(":"), sys.argv[3:]
sys.path[:0] = [p for p in paths if p]
results = {}
for name in modules:
    try:
        importlib.import_module(name)
        results[name] = None
    except BaseException as exc:
        results[name] = f"{type(exc).__name__}: {exc}"
    with open(out + ".part", "w") as fh:
        json.dump({"results": results, "version": list(sys.version_info[:2])}, fh)
    os.replace(out + ".part", out)
"""


@dataclass(frozen=True, kw_only=True)
class ImportCheck:
    status: ImportStatus
    where: str  # what ran the check: an interpreter path, an image name, or "" when none
    modules: dict[str, str | None] = field(default_factory=dict)  # module -> None or error text
    reason: str = ""  # why the check is not verified, or how it failed as a whole

    def failures(self) -> dict[str, str]:
        return {name: error for name, error in self.modules.items() if error is not None}

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class Checker(Protocol):
    name: str

    def available(self, target: Target) -> Availability: ...

    def check(self, root: Path, target: Target, modules: list[str]) -> ImportCheck: ...


def timed_out(where: str, modules: list[str], written: str | None, timeout_s: float) -> ImportCheck:
    """A check that ran out of time: the modules it finished, and the one it was stuck in."""
    done: dict[str, str | None] = json.loads(written)["results"] if written else {}
    stuck = next((name for name in modules if name not in done), None)
    if stuck is not None:
        done[stuck] = f"TimeoutError: importing {stuck} did not finish in {timeout_s:g}s"
    return ImportCheck(
        status="failed",
        where=where,
        modules=done,
        reason=f"importing {stuck or 'the modules'} did not finish in {timeout_s:g}s",
    )


def results_to_check(where: str, raw: dict[str, str | None]) -> ImportCheck:
    failed = any(error is not None for error in raw.values())
    return ImportCheck(status="failed" if failed else "passed", where=where, modules=raw)


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


class LocalInterpreter:
    """A same-version CPython on this machine, isolated: sys.path = layer + stdlib."""

    name = "interpreter"

    def available(self, target: Target) -> Availability:
        if host_arch() != target.arch.name:
            return Availability(
                ok=False, reason=f"this machine is {host_arch()}, the layer is for {target.arch.name}"
            )
        interpreter = find_interpreter(target.version)
        if interpreter is None:
            return Availability(ok=False, reason=f"no local Python {target.version} interpreter found")
        return Availability(ok=True, reason=str(interpreter))

    def check(self, root: Path, target: Target, modules: list[str]) -> ImportCheck:
        interpreter = find_interpreter(target.version)
        if interpreter is None:
            return ImportCheck(status="not-verified", where="", reason="no local interpreter")
        where = f"local interpreter {interpreter}"
        paths = ":".join(str(d.resolve()) for d in sys_path_dirs(root, target))
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            # Lambda puts /opt/lib on the loader path; the layer's lib/ stands in for it.
            "LD_LIBRARY_PATH": str((root / LIB_DIR).resolve()),
            "LANG": "C.UTF-8",
        }
        with tempfile.TemporaryDirectory(prefix="lambdakit-import-") as scratch:
            out = Path(scratch) / "result.json"
            # -I: ignore PYTHON* env and user site; -S: no site-packages of the host.
            # -B: importing must not write __pycache__ into the tree being zipped at the same time.
            argv = [str(interpreter), "-I", "-S", "-B", "-c", IMPORT_SCRIPT, str(out), paths, *modules]
            try:
                proc = subprocess.run(
                    argv, cwd=scratch, env=env, capture_output=True, text=True, timeout=IMPORT_TIMEOUT_S
                )
            except subprocess.TimeoutExpired:
                written = out.read_text() if out.exists() else None
                return timed_out(where, modules, written, IMPORT_TIMEOUT_S)
            if not out.exists():
                detail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
                return ImportCheck(
                    status="failed",
                    where=where,
                    reason=f"the interpreter exited with {proc.returncode}: " + " | ".join(detail),
                )
            raw = json.loads(out.read_text())
        return results_to_check(where, raw["results"])


def checkers() -> list[Checker]:
    """Most faithful first. The runtime-image checker brings the Docker SDK, so it
    is imported only when an import check actually runs."""
    from builder.backends.docker import RuntimeImageChecker

    return [RuntimeImageChecker(), LocalInterpreter()]


def verifier_available(target: Target, import_check: ImportCheckChoice) -> bool:
    """Whether an import check allowed by import_check could run for the target now."""
    allowed = None if import_check == "auto" else {import_check}
    return any(
        checker.available(target).ok for checker in checkers() if allowed is None or checker.name in allowed
    )


def check_imports(
    root: Path, target: Target, modules: list[str], *, allowed: set[str] | None = None
) -> ImportCheck:
    """Run the best available checker; say why when none can run."""
    if not modules:
        return ImportCheck(status="not-verified", where="", reason="the layer provides no importable module")
    reasons = []
    for checker in checkers():
        if allowed is not None and checker.name not in allowed:
            continue
        availability = checker.available(target)
        if availability.ok:
            return checker.check(root, target, modules)
        reasons.append(f"{checker.name}: {availability.reason}")
    return ImportCheck(status="not-verified", where="", reason="; ".join(reasons) or "no checker allowed")
