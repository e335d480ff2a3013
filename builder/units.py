"""Sizes as Lambda states its quotas: "250 MB" is 250 MiB (250 x 1024 x 1024 bytes)."""

from __future__ import annotations

MB = 1024 * 1024


def megabytes(size: int) -> str:
    return f"{size / MB:.1f} MB"
