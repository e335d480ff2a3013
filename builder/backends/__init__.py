"""Backends: the ways of getting a requirement set's files into python/.

Each backend is a module exposing `BACKEND`, an object satisfying `Backend`;
builder.build lists them and chooses one by name (or "auto").
"""

from __future__ import annotations

import contextlib
import re
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Protocol

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from builder.availability import Availability
from builder.errors import EnvironmentProblem, ResolveError, UsageError
from builder.progress import Progress, run_streamed
from builder.requirements import SOURCE_BUILD_OPTIONS, RequirementSet
from builder.runtimes import Target

# Packages known to ship no wheels at all, and what to use instead.
_SOURCE_ONLY_HINTS = {
    "psycopg2": "psycopg2 is published as source only: use psycopg2-binary (same import name), "
    "or build from source in the Lambda build image with --backend docker",
}


@dataclass(frozen=True, kw_only=True)
class ResolveRequest:
    requirements: RequirementSet  # already read and checked for syntax
    target: Target
    staging: Path  # the layer root being built; files go to staging/python (and staging/lib)


@dataclass(frozen=True, kw_only=True)
class Resolved:
    backend: str
    distributions: dict[str, str]  # normalised name -> version
    notes: tuple[str, ...] = ()


class Backend(Protocol):
    name: str

    def available(self, target: Target) -> Availability: ...

    def resolve(self, request: ResolveRequest, progress: Progress) -> Resolved: ...


def no_wheel_error(requirement: str, name: str, target: Target, tried: str) -> ResolveError:
    """A wheels-only resolver found no wheel of the requirement that loads on the target."""
    hint = _SOURCE_ONLY_HINTS.get(
        canonicalize_name(name),
        "pin a release that publishes wheels for this runtime, or build from source "
        "in the Lambda build image with --backend docker",
    )
    return ResolveError(
        f"no wheel of {requirement} can load on {target.describe()}: tried interpreter "
        f"{target.python_tag}, ABI {target.python_tag}/abi3/none, {tried}",
        hint=hint,
        step="resolve",
    )


def unresolved_error(tool: str, output: str, target: Target) -> ResolveError:
    tail = "\n".join(output.strip().splitlines()[-8:])
    return ResolveError(
        f"{tool} could not resolve the requirements for {target.describe()}:\n{tail}",
        hint=f"read {tool}'s message above; conflicting pins must be fixed in the requirements file",
        step="resolve",
    )


def installed_distributions(site: Path) -> dict[str, str]:
    """Normalised name -> version of what a resolver installed into `site` (from its .dist-info)."""
    found = metadata.distributions(path=[str(site)])
    return dict(sorted((canonicalize_name(dist.metadata["Name"]), dist.version) for dist in found))


def requirement_names(requirements: RequirementSet) -> list[str]:
    """The distributions a requirement set names; a bare URL or path names none here."""
    names = []
    for line in requirements.requirements:
        with contextlib.suppress(InvalidRequirement):
            names.append(Requirement(line).name)
    return names


# A silent index must not hold a build for ever (uv's own per-request timeout is 30 s).
RESOLVE_TIMEOUT_S = 600


def run_resolver(argv: list[str], progress: Progress) -> tuple[int, str]:
    """Run a resolver with its output streamed to progress: (exit code, its last lines).

    Past RESOLVE_TIMEOUT_S it is killed and that is an environment error.
    """
    progress.output("$ " + " ".join(argv))
    try:
        code, tail = run_streamed(argv, progress, keep=200, timeout_s=RESOLVE_TIMEOUT_S)
    except subprocess.TimeoutExpired as err:
        raise EnvironmentProblem(
            f"resolving did not finish in {RESOLVE_TIMEOUT_S:g}s (a package index that does not answer?)",
            hint="check network access to the index",
            step="resolve",
        ) from err
    return code, "\n".join(tail)


# This machine's failures, not the requirements': a full disk, a read-only or forbidden folder.
_LOCAL_FAILURE = re.compile(r"(No space left on device|Read-only file system|Permission denied)[^\n]*")


def local_failure(tool: str, output: str) -> EnvironmentProblem | None:
    """The resolver failed because of this machine (exit 2), not because of the requirements."""
    match = _LOCAL_FAILURE.search(output)
    if match is None:
        return None
    return EnvironmentProblem(
        f"{tool} could not write the layer: {match.group(0)}",
        hint="free disk space or fix the permissions of --out and the temporary folder",
        step="resolve",
    )


def refuse_source_builds(requirements: RequirementSet, backend: str) -> None:
    """A wheels-only backend never compiles: a build here would produce binaries for this host."""
    asked = sorted(set(requirements.options) & set(SOURCE_BUILD_OPTIONS))
    if asked:
        raise UsageError(
            f"{requirements.path} asks for a build from source ({', '.join(asked)}), which the {backend} "
            "backend never does: it would compile for this machine, not for Lambda",
            hint="build inside the Lambda build image with --backend docker, or drop the option",
            step="resolve",
        )
