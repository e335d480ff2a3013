"""The layer's deterministic zip.

Two builds of the same inputs give byte-identical zips: entries are sorted, and
timestamps, permissions and the creating system are fixed.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from builder.errors import UnpackableLayer

# The earliest timestamp a zip can hold; any fixed value works, this one is conventional.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
ZIP_LEVEL = 5
# Read and compressed this much at a time: a layer's largest files (shared libraries) never sit
# whole in memory.
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True, kw_only=True)
class PackageResult:
    zip_path: Path
    zip_sha256: str
    zipped_bytes: int
    unzipped_bytes: int
    files: dict[str, str]  # relative path -> sha256
    file_sizes: dict[str, int]  # relative path -> bytes: what a no-op rebuild checks the tree against


def sha256_file(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _entries(tree: Path) -> list[Path]:
    return sorted(
        (p for p in tree.rglob("*") if p.is_file() or p.is_dir()),
        key=lambda p: p.relative_to(tree).as_posix(),
    )


def _zip_info(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
    info.create_system = 3  # Unix, so the permission bits below are honoured on extraction
    info.external_attr = mode << 16
    return info


def _set_level(info: zipfile.ZipInfo, level: int) -> None:
    # An entry opened for writing takes its level from its ZipInfo, not from the archive.
    if sys.version_info >= (3, 13):
        info.compress_level = level
    else:
        info._compresslevel = level  # type: ignore[attr-defined]  # its name before 3.13, not in the stubs


def write_zip(tree: Path, zip_path: Path) -> PackageResult:
    files: dict[str, str] = {}
    sizes: dict[str, int] = {}
    unzipped = 0
    # Level 5, not zlib's default 6: measured on the psycopg2 layer, 40% less time for a zip
    # 0.8% larger (compressing 0.25 s against 0.43 s; 4.20 MB against 4.17 MB).
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in _entries(tree):
            name = path.relative_to(tree).as_posix()
            if path.is_symlink():
                raise UnpackableLayer(
                    f"{name} is a symbolic link; a layer is a zip file and cannot hold links",
                    hint="pin a release of the package that installs it (see its RECORD) without the link",
                    step="package",
                )
            if path.is_dir():
                archive.writestr(_zip_info(name + "/", stat.S_IFDIR | 0o755), b"")
                continue
            executable = os.access(path, os.X_OK)
            info = _zip_info(name, stat.S_IFREG | (0o755 if executable else 0o644))
            info.compress_type = zipfile.ZIP_DEFLATED
            _set_level(info, ZIP_LEVEL)
            # Known before writing, as writestr knows it: it decides whether the entry needs zip64.
            info.file_size = path.stat().st_size
            digest = hashlib.sha256()
            size = 0
            with path.open("rb") as source, archive.open(info, "w") as entry:
                while chunk := source.read(CHUNK_BYTES):
                    digest.update(chunk)
                    entry.write(chunk)
                    size += len(chunk)
            files[name] = digest.hexdigest()
            sizes[name] = size
            unzipped += size
    return PackageResult(
        zip_path=zip_path,
        zip_sha256=sha256_file(zip_path),
        zipped_bytes=zip_path.stat().st_size,
        unzipped_bytes=unzipped,
        files=files,
        file_sizes=sizes,
    )
