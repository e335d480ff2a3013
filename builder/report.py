"""What a validation found: its problems, its import check and the verdict they give.

validate.py produces it, layer.json records it (read back through from_dict), and only
the CLI turns it into text or JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from builder import runtimes
from builder.problems import Problem, errors
from builder.runtimes import Target
from builder.verify.result import ImportCheck

Verdict = Literal["valid", "invalid", "not-verified"]
REPORT_SCHEMA = 1


@dataclass(frozen=True, kw_only=True)
class ValidationReport:
    target: Target
    problems: tuple[Problem, ...]
    imports: ImportCheck

    @property
    def verdict(self) -> Verdict:
        if errors(list(self.problems)) or self.imports.status == "failed":
            return "invalid"
        if self.imports.status == "not-verified":
            return "not-verified"
        return "valid"

    @property
    def ok(self) -> bool:
        return self.verdict == "valid"

    def to_dict(self) -> dict[str, object]:
        return {
            "schema": REPORT_SCHEMA,
            "ok": self.ok,
            "verdict": self.verdict,
            "runtime": self.target.runtime,
            "arch": self.target.arch.name,
            "problems": [p.to_dict() for p in self.problems],
            "imports": self.imports.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: object) -> ValidationReport:
        """A report as to_dict wrote it; ValueError for anything else, including a recorded
        verdict its own problems and import check do not give."""
        if not isinstance(data, dict) or data.get("schema") != REPORT_SCHEMA:
            raise ValueError("not a validation report of this lambdakit")
        problems = data.get("problems")
        if not isinstance(problems, list):
            raise ValueError("a validation report without its list of problems")
        report = cls(
            target=runtimes.target(str(data.get("runtime")), str(data.get("arch"))),
            problems=tuple(Problem.from_dict(p) for p in problems),
            imports=ImportCheck.from_dict(data.get("imports")),
        )
        if report.to_dict() != data:
            raise ValueError(f"the recorded verdict {data.get('verdict')!r} is not what its problems give")
        return report
