"""layer.json: what a build published, typed, read back strictly; and the cache key that decides
whether a layer must be built again."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from builder import __version__
from builder.package import sha256_file
from builder.report import ValidationReport

MANIFEST_SCHEMA = 1
TOOL_NAME = "lambdakit"
# What layer.json records for a build with --no-validate.
UNVALIDATED = {"verdict": "unvalidated", "ok": False}


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


T = TypeVar("T")


def _field(data: Mapping[str, Any], key: str, kind: type[T]) -> T:
    """data[key], which must be a kind (an int that is not a bool); ValueError otherwise."""
    value = data.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{key!r} is not a {kind.__name__}: {value!r}")
    return value


def _mapping(data: Mapping[str, Any], key: str, kind: type[T]) -> dict[str, T]:
    value = _field(data, key, dict)
    for name in value:
        _field(value, name, kind)
    return value


@dataclass(frozen=True, kw_only=True)
class Sizes:
    unzipped: int
    zipped: int


@dataclass(frozen=True, kw_only=True)
class SlimSummary:
    removed_files: int
    bytes_saved: int


@dataclass(frozen=True, kw_only=True)
class ZipRecord:
    """The published zip: its sha256, and its size and modification time, which a no-op
    rebuild checks first."""

    file: str
    sha256: str
    bytes: int
    mtime_ns: int


def zip_record(zip_path: Path, sha256: str) -> ZipRecord:
    info = zip_path.stat()
    return ZipRecord(file=zip_path.name, sha256=sha256, bytes=info.st_size, mtime_ns=info.st_mtime_ns)


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """layer.json: what a build published, how, and the verdict it was given."""

    name: str
    tool_version: str
    runtime: str
    arch: str
    os_name: str
    runtime_glibc: str
    highest_glibc_needed: str | None
    backend: str
    cache_key: str
    requirements_sha256: str
    packages: dict[str, str]  # distribution -> version
    sizes: Sizes
    slim: SlimSummary
    zip: ZipRecord
    validation: ValidationReport | None  # None: built with --no-validate
    files: dict[str, str]  # relative path -> sha256
    file_sizes: dict[str, int]  # relative path -> bytes

    @property
    def verdict(self) -> str:
        return self.validation.verdict if self.validation is not None else "unvalidated"

    def to_dict(self) -> dict[str, object]:
        return {
            "schema": MANIFEST_SCHEMA,
            "name": self.name,
            "tool": {"name": TOOL_NAME, "version": self.tool_version},
            "runtime": self.runtime,
            "arch": self.arch,
            "os": self.os_name,
            "runtime_glibc": self.runtime_glibc,
            "highest_glibc_needed": self.highest_glibc_needed,
            "backend": self.backend,
            "cache_key": self.cache_key,
            "requirements_sha256": self.requirements_sha256,
            "packages": dict(self.packages),
            "sizes": {"unzipped": self.sizes.unzipped, "zipped": self.sizes.zipped},
            "slim": {"removed_files": self.slim.removed_files, "bytes_saved": self.slim.bytes_saved},
            "zip": {
                "file": self.zip.file,
                "sha256": self.zip.sha256,
                "bytes": self.zip.bytes,
                "mtime_ns": self.zip.mtime_ns,
            },
            "validation": self.validation.to_dict() if self.validation is not None else dict(UNVALIDATED),
            "files": dict(self.files),
            "file_sizes": dict(self.file_sizes),
        }

    @classmethod
    def from_dict(cls, data: object) -> Manifest:
        """A manifest as to_dict wrote it; ValueError for anything else (another schema, a field
        missing or of another type, a verdict its problems do not give)."""
        if not isinstance(data, dict) or data.get("schema") != MANIFEST_SCHEMA:
            raise ValueError("not a layer manifest of this schema")
        tool, sizes, slimmed, recorded = (_field(data, key, dict) for key in ("tool", "sizes", "slim", "zip"))
        if _field(tool, "name", str) != TOOL_NAME:
            raise ValueError(f"written by {tool['name']!r}, not {TOOL_NAME}")
        glibc = data.get("highest_glibc_needed")
        validation = data.get("validation")
        manifest = cls(
            name=_field(data, "name", str),
            tool_version=_field(tool, "version", str),
            runtime=_field(data, "runtime", str),
            arch=_field(data, "arch", str),
            os_name=_field(data, "os", str),
            runtime_glibc=_field(data, "runtime_glibc", str),
            highest_glibc_needed=None if glibc is None else _field(data, "highest_glibc_needed", str),
            backend=_field(data, "backend", str),
            cache_key=_field(data, "cache_key", str),
            requirements_sha256=_field(data, "requirements_sha256", str),
            packages=_mapping(data, "packages", str),
            sizes=Sizes(unzipped=_field(sizes, "unzipped", int), zipped=_field(sizes, "zipped", int)),
            slim=SlimSummary(
                removed_files=_field(slimmed, "removed_files", int),
                bytes_saved=_field(slimmed, "bytes_saved", int),
            ),
            zip=ZipRecord(
                file=_field(recorded, "file", str),
                sha256=_field(recorded, "sha256", str),
                bytes=_field(recorded, "bytes", int),
                mtime_ns=_field(recorded, "mtime_ns", int),
            ),
            validation=None if validation == UNVALIDATED else ValidationReport.from_dict(validation),
            files=_mapping(data, "files", str),
            file_sizes=_mapping(data, "file_sizes", int),
        )
        if manifest.to_dict() != data:
            raise ValueError("a layer manifest with fields this lambdakit does not write")
        return manifest


def read_manifest(path: Path) -> Manifest | None:
    """The manifest at path; None when it is missing, unreadable or not one this lambdakit wrote."""
    try:
        return Manifest.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def zip_matches(recorded: ZipRecord, zip_path: Path) -> bool:
    """Whether the published zip is still the one recorded: its size and time first (a no-op
    rebuild stays fast), its full sha256 when those differ."""
    if not zip_path.is_file():
        return False
    info = zip_path.stat()
    if (info.st_size, info.st_mtime_ns) == (recorded.bytes, recorded.mtime_ns):
        return True
    return recorded.sha256 == sha256_file(zip_path)


def tree_matches(file_sizes: Mapping[str, int], tree: Path) -> bool:
    """Whether the published tree still holds the files recorded, at their sizes: a file
    deleted, added or cut short in tree/ means the layer is rebuilt, not exported as is."""
    if not tree.is_dir():
        return False
    present = {
        path.relative_to(tree).as_posix(): path.lstat().st_size
        for path in tree.rglob("*")
        if path.is_file() or path.is_symlink()
    }
    return present == file_sizes
