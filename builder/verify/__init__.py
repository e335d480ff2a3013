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


# Most faithful first. The runtime-image checker brings the Docker SDK: it is loaded only
# when an import check runs (builder/lazy.py).
RUNTIME_IMAGE_CHECKER = "builder.verify.image:RuntimeImageChecker"


def checkers() -> list[Checker]:
    return [lazy.load(RUNTIME_IMAGE_CHECKER)(), LocalInterpreter()]


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
