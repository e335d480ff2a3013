"""Backends: the ways of getting a requirement set's files into python/.

Each backend is a module exposing `BACKEND`, an object satisfying `Backend`;
builder.build lists them and chooses one by name (or "auto").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from builder.progress import Progress
from builder.requirements import RequirementSet
from builder.runtimes import Target


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


@dataclass(frozen=True, kw_only=True)
class Availability:
    ok: bool
    reason: str
    # The image found is lambdakit's offline stand-in, not the official one.
    standin: bool = False


class Backend(Protocol):
    name: str

    def available(self, target: Target) -> Availability: ...

    def resolve(self, request: ResolveRequest, progress: Progress) -> Resolved: ...
