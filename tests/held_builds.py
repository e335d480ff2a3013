"""For tests that interrupt a build at a fixed point: an index that never answers, and /proc reading."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def silent_index() -> Iterator[tuple[socket.socket, str]]:
    """A package index on loopback that accepts connections and never answers.

    Yields the listener (accept() on it to know a resolver is waiting there) and a
    requirements text that sends resolution to it.
    """
    with socket.socket() as index:
        index.bind(("127.0.0.1", 0))
        index.listen(8)
        index.settimeout(120)
        yield index, f"--index-url http://127.0.0.1:{index.getsockname()[1]}/simple\nnot-cached==9\n"


def descendants(pid: int) -> set[int]:
    """Every process below pid, read from /proc."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found |= {int(child)} | descendants(int(child))
    return found


def alive(pid: int) -> bool:
    """Running or sleeping; gone and zombie (exited, not yet reaped) are not alive."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
