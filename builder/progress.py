"""How long-running steps report progress without printing from deep inside.

The library calls a Progress; the CLI decides whether that becomes step lines on
stderr, with the tools' own output under --verbose (TerminalProgress), or nothing
(Silent: --quiet, --json).
"""

from __future__ import annotations

import subprocess
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol


class Progress(Protocol):
    def step(self, name: str, detail: str = "") -> None:
        """A named step starts: build-layer's resolve, slim, package, validate, publish; deploy's own."""

    def output(self, line: str) -> None:
        """One line of a tool's own output (pip, docker build), for streaming."""


class Silent:
    def step(self, name: str, detail: str = "") -> None:
        pass

    def output(self, line: str) -> None:
        pass


def run_streamed(
    argv: Sequence[str],
    progress: Progress,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
    keep: int = 20,
) -> tuple[int, list[str]]:
    """Run a tool with its output (stdout and stderr) streamed line by line to progress.

    Returns the exit code and the last `keep` lines, for the error message.
    subprocess.TimeoutExpired (or an interrupt) propagates after the process is killed.
    """
    tail: deque[str] = deque(maxlen=keep)
    proc = subprocess.Popen(
        list(argv), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            progress.output(line.rstrip())
            tail.append(line.rstrip())

    # A reader thread, so that the timeout holds even when the tool prints nothing.
    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout=timeout_s)
    except BaseException:
        # A timeout, or SIGTERM/Ctrl-C sent to lambdakit alone: the tool must not live on,
        # writing into a staging folder that is being removed.
        proc.kill()
        proc.wait()
        raise
    reader.join(timeout=5)
    return code, list(tail)
