"""The libraries each Lambda runtime provides itself (data/base-libraries.json), checked when loaded.

A name listed here that the image lacks would be a false pass, so the data says where each list
comes from; placeholders stand for what differs by architecture and Python version.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from builder import DATA_DIR
from builder.runtimes import CatalogueError, Target, all_targets


@cache
def _catalogue() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA_DIR / "base-libraries.json").read_text())
    oses = data["operating_systems"]
    unknown = {t.os_id for t in all_targets()} - set(oses)
    if unknown:
        raise CatalogueError(f"base-libraries.json lacks {sorted(unknown)}")
    for os_id, row in oses.items():
        if not row.get("source"):
            raise CatalogueError(f"base-libraries.json: {os_id} does not say where its list comes from")
        names = row["libraries"]
        if len(set(names)) != len(names):
            raise CatalogueError(f"base-libraries.json: {os_id} lists a library twice")
        for required in ("libc.so.6", "{dynamic_loader}"):
            if required not in names:
                raise CatalogueError(f"base-libraries.json: {os_id} lacks {required}")
        for name in names:
            try:
                name.format(dynamic_loader="", version="")
            except (KeyError, IndexError) as err:
                raise CatalogueError(f"base-libraries.json: {os_id}: unknown placeholder in {name}") from err
    return data


def base_libraries(target: Target) -> frozenset[str]:
    """The sonames the target's runtime image provides."""
    names = _catalogue()["operating_systems"][target.os_id]["libraries"]
    loader, version = target.arch.dynamic_loader, target.version
    return frozenset(name.format(dynamic_loader=loader, version=version) for name in names)
