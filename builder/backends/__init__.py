"""Backends: the ways of getting a requirement set's files into python/.

Each backend is a module-level object satisfying `Backend`; they are listed in
BACKENDS and chosen by name (or "auto") in `choose`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from builder.progress import Progress
from builder.runtimes import Target


@dataclass(frozen=True, kw_only=True)
class ResolveRequest:
    requirements: Path  # a requirements.txt, already checked for syntax
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


class Backend(Protocol):
    name: str

    def available(self, target: Target) -> Availability: ...

    def resolve(self, request: ResolveRequest, progress: Progress) -> Resolved: ...
