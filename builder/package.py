"""Deterministic zip, the layer manifest, and the cache key that decides a rebuild.

Two builds of the same inputs give byte-identical zips: entries are sorted, and
timestamps, permissions and the creating system are fixed.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

from builder import __version__

# The earliest timestamp a zip can hold; any fixed value works, this one is conventional.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
MANIFEST_SCHEMA = 1
ZIP_LEVEL = 5


@dataclass(frozen=True, kw_only=True)
class PackageResult:
    zip_path: Path
    zip_sha256: str
    zipped_bytes: int
    unzipped_bytes: int
    files: dict[str, str]  # relative path -> sha256
    file_sizes: dict[str, int]  # relative path -> bytes: what a no-op rebuild checks the tree against


def _sha256_file(path: Path) -> str:
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
                raise ValueError(f"{name} is a symbolic link; layers are zip files and cannot hold links")
            if path.is_dir():
                archive.writestr(_zip_info(name + "/", stat.S_IFDIR | 0o755), b"")
                continue
            executable = os.access(path, os.X_OK)
            info = _zip_info(name, stat.S_IFREG | (0o755 if executable else 0o644))
            info.compress_type = zipfile.ZIP_DEFLATED
            data = path.read_bytes()
            # With a ZipInfo, writestr takes the level from its own argument, not the archive's.
            archive.writestr(info, data, compresslevel=ZIP_LEVEL)
            files[name] = hashlib.sha256(data).hexdigest()
            sizes[name] = len(data)
            unzipped += len(data)
    return PackageResult(
        zip_path=zip_path,
        zip_sha256=_sha256_file(zip_path),
        zipped_bytes=zip_path.stat().st_size,
        unzipped_bytes=unzipped,
        files=files,
        file_sizes=sizes,
    )


def cache_key(
    *,
    requirements_text: str,
    runtime: str,
    arch: str,
    backend: str,
    data_texts: tuple[str, ...],
    validate: bool,
    import_check: str,
) -> str:
    """Everything that decides the output and its verdict: the requirements (with the files they
    include), the target, the backend, the data the rules read (the runtime catalogue with its
    marker environments, the base libraries), the checks asked for, and the tool's version."""
    material = json.dumps(
        {
            "requirements": requirements_text,
            "runtime": runtime,
            "arch": arch,
            "backend": backend,
            "data": [hashlib.sha256(text.encode()).hexdigest() for text in data_texts],
            "validate": validate,
            "import_check": import_check,
            "tool": __version__,
        },
        sort_keys=True,
    )
    return hashlib.sha256(material.encode()).hexdigest()


def read_manifest(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("schema") == MANIFEST_SCHEMA else None


def zip_stamp(zip_path: Path) -> dict[str, int]:
    """The zip's size and modification time, recorded beside its sha256 when it is published."""
    info = zip_path.stat()
    return {"bytes": info.st_size, "mtime_ns": info.st_mtime_ns}


def zip_matches(manifest: dict[str, object], zip_path: Path) -> bool:
    """Whether the published zip is still the one the manifest describes: its size and time
    first (a no-op rebuild stays fast), its full sha256 when those differ or were not recorded."""
    recorded = manifest.get("zip")
    if not isinstance(recorded, dict) or not zip_path.is_file():
        return False
    stamp = zip_stamp(zip_path)
    if all(recorded.get(key) == value for key, value in stamp.items()):
        return True
    return recorded.get("sha256") == _sha256_file(zip_path)


def tree_matches(manifest: dict[str, object], tree: Path) -> bool:
    """Whether the published tree still holds the files the manifest lists, at their sizes:
    a file deleted, added or cut short in tree/ means the layer is rebuilt, not exported as is."""
    recorded = manifest.get("file_sizes")
    if not isinstance(recorded, dict) or not tree.is_dir():
        return False
    present = {
        path.relative_to(tree).as_posix(): path.lstat().st_size
        for path in tree.rglob("*")
        if path.is_file() or path.is_symlink()
    }
    return present == recorded
