"""Problems are data: a stable code, the file concerned, what is wrong, what to do.

Every step reports problems this way; only the CLI turns them into text or JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Literal, get_args

Severity = Literal["error", "warning"]

# Stable codes, documented in the README; tests and users match on them.
CODES: dict[str, str] = {
    "bad-layout": "Python packages outside python/ are never on sys.path",
    "foreign-binary": "a binary that is not a Linux ELF file (Mach-O, PE, ...)",
    "arch-mismatch": "an ELF file for another CPU architecture",
    "abi-mismatch": "an extension module built for another Python",
    "glibc-too-new": "a binary needs a newer glibc than the runtime has",
    "missing-library": "a needed shared library is neither in the layer nor in the runtime",
    "size-limit": "over a Lambda size quota",
    "no-compatible-binary": "a package ships no extension module the runtime can load",
    "import-failed": "a top-level module raised an error on import",
    "unreadable-binary": "a file that looks like a binary could not be parsed",
    "unreadable": "a folder of the layer that could not be read, so nothing in it was checked",
    "escaping-link": "a symbolic link that points outside the layer or nowhere",
    "bad-archive": "a layer zip that cannot be unpacked safely: duplicate, encrypted or corrupt members, "
    "paths or links leading outside it",
    "missing-dependency": "a distribution's requirement (Requires-Dist, markers for the runtime) is not met",
    "handler-not-found": "a function's Handler (module.function) cannot be imported or looked up",
    "handler-unproven": "importing a function's Handler raised what may need the function's environment",
    "unknown-runtime": "a Python runtime or architecture in a SAM template that lambdakit has no facts for",
    "missing-folder": "a folder the SAM build output's template names (CodeUri, ContentUri) does not exist",
    "layer-overwrite": "a later layer of a function replaces a file of an earlier one in /opt",
}


@dataclass(frozen=True, kw_only=True)
class Problem:
    code: str
    path: str
    message: str
    hint: str
    severity: Severity = "error"
    # Which artifact the file came from, where one view assembles several (validate --deployed:
    # "function package", "layer NAME:VERSION"). Written only when set: layer.json stays as it was.
    source: str = ""

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unknown problem code {self.code!r}")

    def to_dict(self) -> dict[str, str]:
        data = asdict(self)
        if not self.source:
            del data["source"]
        return data

    @classmethod
    def from_dict(cls, data: object) -> Problem:
        """A problem as to_dict wrote it (read back from layer.json); ValueError for anything else."""
        names = {f.name for f in fields(cls)}
        if not (
            isinstance(data, dict)
            and names - {"source"} <= set(data) <= names
            and all(isinstance(v, str) for v in data.values())
        ):
            raise ValueError(f"not a problem: {data!r}")
        if data["severity"] not in get_args(Severity):
            raise ValueError(f"unknown severity {data['severity']!r}")
        return cls(**data)


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]
