"""How long-running steps report progress without printing from deep inside.

The library calls a Progress; the CLI decides whether that becomes a terminal
display, stderr lines, or nothing (--quiet, --json).
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def step(self, name: str, detail: str = "") -> None:
        """A named pipeline step starts (resolve, slim, audit, verify, package)."""

    def output(self, line: str) -> None:
        """One line of a tool's own output (pip, docker build), for streaming."""


class Silent:
    def step(self, name: str, detail: str = "") -> None:
        pass

    def output(self, line: str) -> None:
        pass
