"""What an import check reports, and the script that runs inside the checked interpreter."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from builder.availability import Availability
from builder.runtimes import Target

ImportStatus = Literal["passed", "failed", "not-verified"]
# Where the import check may run: "auto" takes the most faithful checker available.
ImportCheckChoice = Literal["auto", "runtime-image", "interpreter"]
IMPORT_CHECK_CHOICES: tuple[ImportCheckChoice, ...] = ("auto", "runtime-image", "interpreter")

IMPORT_TIMEOUT_S = 300

# Runs inside the checked interpreter, with the folders to put before and after its
# sys.path: imports each module and writes one JSON
# object {module: null | "ExcType: message"} to the file named in argv[1], so a
# module that prints on import cannot corrupt the result. The file is rewritten
# after each module: when the check times out, the first module missing from it
# is the one whose import hangs.
IMPORT_SCRIPT = r"""
import importlib, json, os, sys
out, first, last, modules = sys.argv[1], sys.argv[2].split(":"), sys.argv[3].split(":"), sys.argv[4:]
sys.path[:0] = [p for p in first if p]
sys.path += [p for p in last if p]
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
