"""missing-dependency: `pip check` for a foreign target, from the files alone.

Every distribution on the layer's sys.path (its *.dist-info) declares what it
needs (Requires-Dist). Each requirement whose marker holds on the target (the
catalogue's marker environment, never this host's) must be met by a
distribution present at a version its specifier allows. Requirements that only
apply to an extra are not checked: which extras were asked for is not recorded
in the files.
"""

from __future__ import annotations

import email.parser
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from builder.layout import sys_path_dirs
from builder.problems import Problem, Severity
from builder.runtimes import Target


@dataclass(frozen=True, kw_only=True)
class Distribution:
    name: str  # canonical
    version: str
    requires: tuple[str, ...]
    path: str  # the dist-info directory, relative to the tree's root


def distributions(root: Path, target: Target) -> dict[str, Distribution]:
    """The distributions Python finds on the tree's sys.path, the first of a name winning."""
    found: dict[str, Distribution] = {}
    for directory in sys_path_dirs(root, target):
        for info in sorted(directory.glob("*.dist-info")):
            metadata = info / "METADATA"
            if not metadata.is_file():
                continue
            message = email.parser.HeaderParser().parsestr(metadata.read_text(errors="replace"))
            if not message["Name"] or not message["Version"]:
                continue
            name = canonicalize_name(message["Name"])
            found.setdefault(
                name,
                Distribution(
                    name=name,
                    version=message["Version"],
                    requires=tuple(message.get_all("Requires-Dist") or ()),
                    path=info.relative_to(root).as_posix(),
                ),
            )
    return found


def _applies(requirement: Requirement, target: Target) -> bool:
    if requirement.marker is None:
        return True
    environment = {**target.marker_environment, "extra": ""}
    try:
        return requirement.marker.evaluate(environment)
    except (UndefinedComparison, UndefinedEnvironmentName):
        return True  # cannot tell: check it rather than let a gap pass


def check_dependencies(root: Path, target: Target, *, severity: Severity = "error") -> list[Problem]:
    present = distributions(root, target)
    problems = []
    for dist in present.values():
        for line in dist.requires:
            try:
                requirement = Requirement(line)
            except InvalidRequirement:
                continue  # a malformed declaration is the package's bug, not a gap in the layer
            if not _applies(requirement, target):
                continue
            needed = canonicalize_name(requirement.name)
            wanted = f"{requirement.name}{requirement.specifier}"
            when = (
                f" when {requirement.marker}, which holds on {target.runtime} {target.arch.name}"
                if requirement.marker
                else ""
            )
            met_by = present.get(needed)
            if met_by is None:
                message = f"{dist.name} {dist.version} requires {wanted}{when}; {needed} is not present"
            elif not _satisfies(requirement, met_by.version):
                message = (
                    f"{dist.name} {dist.version} requires {wanted}{when}; "
                    f"{needed} {met_by.version} is present, which does not satisfy it"
                )
            else:
                continue
            problems.append(
                Problem(
                    code="missing-dependency",
                    path=dist.path,
                    message=message,
                    hint=_hint(severity, requirement),
                    severity=severity,
                )
            )
    return problems


def _satisfies(requirement: Requirement, version: str) -> bool:
    try:
        return requirement.specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False


def _hint(severity: Severity, requirement: Requirement) -> str:
    if severity == "warning":
        return (
            f"on its own the layer lacks {requirement.name}; if the function or another layer provides "
            "it, check them together: lambdakit validate FUNCTION_DIR --function --layer LAYER"
        )
    return (
        f"add {requirement.name}{requirement.specifier} to the requirements (--backend uv evaluates markers "
        "for the runtime), or ship it in the function package"
    )
