"""A layer's files as Lambda mounts them at /opt, and the ELF facts of its binaries, each read once."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

from builder.audit.elf import BinaryFormat, ElfFacts, ElfReadError, binary_format, read_elf
from builder.layout import BIN_DIR, LIB_DIR, OPT_DIR

_SHARED_OBJECT = re.compile(r"\.so(\.\d+)*$|\.(pyd|dylib|dll)$")


class LayerTree:
    """A layer's unpacked files; each binary is read at most once, whoever asks."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise NotADirectoryError(f"{root} is not a directory")
        self.root = root
        self._real_root = root.resolve()
        # Symbolic links (to files or folders), by their path: rel -> what they point to.
        self.links: dict[str, str] = {}
        # Folders os.walk could not list (no permission): nothing in them was checked.
        self.unreadable: dict[str, str] = {}
        self.files: tuple[str, ...] = tuple(sorted(self._walk()))
        self._file_set = frozenset(self.files)
        self._facts: dict[str, ElfFacts | ElfReadError] = {}

    def _walk(self) -> Iterator[str]:
        def note(err: OSError) -> None:
            rel = Path(err.filename).relative_to(self.root).as_posix() if err.filename else "."
            self.unreadable[rel] = err.strerror or str(err)

        for directory, folders, names in os.walk(self.root, onerror=note):
            for name in names + folders:
                path = Path(directory, name)
                rel = path.relative_to(self.root).as_posix()
                # A link is audited through what it points to (see rules.check_links), never as a file
                # of its own.
                if path.is_symlink():
                    self.links[rel] = os.readlink(path)
                elif name in names and path.is_file():
                    yield rel

    def link_target(self, rel: str) -> str | None:
        """The layer path a link resolves to, None when that is outside the layer or nothing."""
        real = Path(os.path.realpath(self.root / rel))
        if not real.is_relative_to(self._real_root) or not real.exists():
            return None
        return real.relative_to(self._real_root).as_posix()

    @cached_property
    def binaries(self) -> dict[str, BinaryFormat]:
        """Every file that is a binary of any format, by its path in the layer."""
        found: dict[str, BinaryFormat] = {}
        for rel in self.files:
            if _worth_reading(rel):
                kind = binary_format(self.root / rel)
                if kind != "other":
                    found[rel] = kind
        return found

    @cached_property
    def unzipped_bytes(self) -> int:
        return sum((self.root / rel).stat().st_size for rel in self.files)

    def elf(self, rel: str) -> ElfFacts | ElfReadError:
        if rel not in self._facts:
            try:
                self._facts[rel] = read_elf(self.root / rel)
            except ElfReadError as err:
                self._facts[rel] = err
        return self._facts[rel]

    def elves(self) -> Iterator[tuple[str, ElfFacts]]:
        """Every ELF file that could be read, with its facts."""
        for rel, kind in self.binaries.items():
            if kind == "elf" and isinstance(facts := self.elf(rel), ElfFacts):
                yield rel, facts

    def unparseable(self) -> Iterator[tuple[str, ElfReadError]]:
        """Every file with the ELF magic that could not be read, with the reason."""
        for rel, kind in self.binaries.items():
            if kind == "elf" and isinstance(err := self.elf(rel), ElfReadError):
                yield rel, err

    def file_at(self, mounted: str) -> str | None:
        """The layer file the runtime would open at this absolute path, following symlinks in the layer."""
        if not mounted.startswith(OPT_DIR + "/"):
            return None
        real = Path(os.path.realpath(self.root / mounted[len(OPT_DIR) + 1 :]))
        if not real.is_relative_to(self._real_root):
            return None
        rel = real.relative_to(self._real_root).as_posix()
        return rel if rel in self._file_set else None


def _worth_reading(rel: str) -> bool:
    parts = rel.split("/")
    if _SHARED_OBJECT.search(parts[-1]) or parts[0] in (LIB_DIR, BIN_DIR):
        return True
    # Executables shipped inside packages have no suffix; metadata files without one are skipped.
    return "." not in parts[-1] and not any(part.endswith((".dist-info", ".egg-info")) for part in parts)
