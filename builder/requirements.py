"""Reading a requirements file before any resolver sees it, so bad input fails early and clearly."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from builder.errors import UsageError

# pip options that may appear in a requirements file and are passed through.
_ALLOWED_OPTIONS = (
    "--index-url",
    "--extra-index-url",
    "--find-links",
    "-i",
    "-f",
    "--no-binary",
    "--only-binary",
)


@dataclass(frozen=True, kw_only=True)
class RequirementSet:
    path: Path
    text: str  # the file as read: what the build cache key is made of
    requirements: tuple[Requirement, ...]

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.requirements]


def read_requirements(path: Path) -> RequirementSet:
    if not path.is_file():
        raise UsageError(
            f"requirements file {path} does not exist",
            hint="create it, or pass an existing one with -r/--requirements",
        )
    text = path.read_text()
    requirements: list[Requirement] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            if not line.startswith(_ALLOWED_OPTIONS):
                raise UsageError(
                    f"{path}:{number}: option {line.split()[0]!r} is not supported in a layer's requirements",
                    hint="list one requirement per line (name, version specifier, extras, markers)",
                )
            continue
        try:
            requirements.append(Requirement(line))
        except InvalidRequirement as err:
            raise UsageError(
                f"{path}:{number}: {line!r} is not a valid requirement ({err})",
                hint="write it as NAME[extras]SPECIFIER, for example psycopg2-binary==2.9.11",
            ) from err
    if not requirements:
        raise UsageError(
            f"{path} lists no requirements", hint="add at least one package, e.g. psycopg2-binary"
        )
    return RequirementSet(path=path, text=text, requirements=tuple(requirements))
