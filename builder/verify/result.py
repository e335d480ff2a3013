"""What an import check reports, and the script that runs inside the checked interpreter."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Protocol, get_args

from builder.availability import Availability
from builder.runtimes import Target

ImportStatus = Literal["passed", "failed", "not-verified"]
# Where the import check may run: "auto" takes the most faithful checker available.
ImportCheckChoice = Literal["auto", "runtime-image", "interpreter"]
IMPORT_CHECK_CHOICES: tuple[ImportCheckChoice, ...] = ("auto", "runtime-image", "interpreter")

IMPORT_TIMEOUT_S = 300

# Runs inside the checked interpreter: argv is the result file, the folders to put before
# sys.path, the folders to put after it, then the modules. It imports each module and writes
# {"results": {module: null | "ExcType: message"}, "version": [major, minor]} to the result
# file, not stdout, so a module that prints on import cannot corrupt the result. The file is
# rewritten after each module: when the check times out, the first module missing from it is
# the one whose import hangs. An entry "module:name" also looks name up in the module, as Lambda
# finds a function's handler.
IMPORT_SCRIPT = r"""
import importlib, json, os, sys
out, first, last, modules = sys.argv[1], sys.argv[2].split(":"), sys.argv[3].split(":"), sys.argv[4:]
sys.path[:0] = [p for p in first if p]
sys.path += [p for p in last if p]
results = {}
for name in modules:
    module, _, attribute = name.partition(":")
    try:
        loaded = importlib.import_module(module)
        if attribute:
            getattr(loaded, attribute)
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

    @classmethod
    def from_dict(cls, data: object) -> ImportCheck:
        """An import check as to_dict wrote it (read back from layer.json); ValueError for anything else."""
        if not isinstance(data, dict) or set(data) != {"status", "where", "modules", "reason"}:
            raise ValueError(f"not an import check: {data!r}")
        status, where, modules, reason = data["status"], data["where"], data["modules"], data["reason"]
        if status not in get_args(ImportStatus) or not isinstance(where, str) or not isinstance(reason, str):
            raise ValueError(f"not an import check: {data!r}")
        if not isinstance(modules, dict) or not all(
            isinstance(name, str) and (error is None or isinstance(error, str))
            for name, error in modules.items()
        ):
            raise ValueError(f"not the modules of an import check: {modules!r}")
        return cls(status=status, where=where, modules=modules, reason=reason)


class Checker(Protocol):
    name: str

    def available(self, target: Target) -> Availability: ...

    def check(self, root: Path, target: Target, modules: list[str]) -> ImportCheck: ...


def timed_out(where: str, modules: list[str], written: str | bytes | None, timeout_s: float) -> ImportCheck:
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


def interpreter_died(where: str, exit_status: object, output: list[str]) -> ImportCheck:
    """The check when the interpreter wrote no results: it crashed or could not start."""
    detail = " | ".join(line for line in output[-5:] if line.strip())
    return ImportCheck(
        status="failed", where=where, reason=f"the interpreter exited with {exit_status}: {detail}"
    )


def results_to_check(where: str, raw: dict[str, str | None]) -> ImportCheck:
    failed = any(error is not None for error in raw.values())
    return ImportCheck(status="failed" if failed else "passed", where=where, modules=raw)
