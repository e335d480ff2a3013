"""The import check: load every top-level module of a layer in the runtime's Python.

Checkers are tried in order of fidelity; the first available one runs. When none
can run, the result is "not-verified", which is never counted as a pass.
"""

from __future__ import annotations

from pathlib import Path

from builder import lazy
from builder.runtimes import Target
from builder.verify.local import LocalInterpreter
from builder.verify.result import IMPORT_CHECK_CHOICES, Checker, ImportCheck, ImportCheckChoice

__all__ = [
    "IMPORT_CHECK_CHOICES",
    "ImportCheck",
    "ImportCheckChoice",
    "check_imports",
    "checkers",
    "verifier_available",
]


# Most faithful first. The runtime-image checker brings the Docker SDK: it is loaded only when
# an import check runs or is asked whether it could (builder/lazy.py), never at start-up.
RUNTIME_IMAGE_CHECKER = "builder.verify.image:RuntimeImageChecker"


def checkers() -> list[Checker]:
    return [lazy.load(RUNTIME_IMAGE_CHECKER)(), LocalInterpreter()]


def _allowed(import_check: ImportCheckChoice) -> list[Checker]:
    return [checker for checker in checkers() if import_check in ("auto", checker.name)]


def verifier_available(target: Target, import_check: ImportCheckChoice) -> bool:
    """Whether an import check allowed by import_check could run for the target now."""
    return any(checker.available(target).ok for checker in _allowed(import_check))


def check_imports(
    root: Path, target: Target, modules: list[str], *, import_check: ImportCheckChoice = "auto"
) -> ImportCheck:
    """Run the best available checker import_check allows; say why when none can run."""
    if not modules:
        return ImportCheck(status="not-verified", where="", reason="the layer provides no importable module")
    reasons = []
    for checker in _allowed(import_check):
        availability = checker.available(target)
        if availability.ok:
            return checker.check(root, target, modules)
        reasons.append(f"{checker.name}: {availability.reason}")
    return ImportCheck(status="not-verified", where="", reason="; ".join(reasons) or "no checker allowed")
