"""Whether a tool this machine may lack (a backend, an import checker, an image) can run, and why not."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Availability:
    ok: bool
    reason: str
    # The image found is lambdakit's offline stand-in, not the official one.
    standin: bool = False
