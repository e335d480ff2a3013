"""Facts about binary files: what format a file is, and what an ELF file asks of its loader.

Nothing here knows about Lambda; the rules that judge these facts live in rules.py.
"""

from __future__ import annotations

import re
import struct
import sys
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from elftools.elf.dynamic import DynamicSection, DynamicSegment
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection, GNUVerSymSection
from elftools.elf.sections import SymbolTableSection

BinaryFormat = Literal["elf", "macho", "pe", "other"]

ELF_MAGIC = b"\x7fELF"
# Thin Mach-O (32/64-bit, either byte order), then fat/universal headers (always big-endian).
_MACHO_MAGICS = (b"\xfe\xed\xfa\xce", b"\xce\xfa\xed\xfe", b"\xfe\xed\xfa\xcf", b"\xcf\xfa\xed\xfe")
_FAT_MAGICS = (b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf")
# A Java class file shares the fat magic; its next word is the class version (45 and up), whereas
# a universal binary's is the number of architectures it holds. file(1) draws the line the same way.
_MAX_FAT_ARCHES = 20
_PE_MAGIC = b"MZ"

_GLIBC_VERSION = re.compile(r"GLIBC_(\d+(?:\.\d+)+)")
# The top bit of a symbol-version entry marks a hidden version; the rest is the index.
_VERSYM_INDEX = 0x7FFF


class _Malformed(Exception):
    pass


class ElfReadError(Exception):
    """A file with the ELF magic that cannot be parsed (truncated, corrupt, not really ELF)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, kw_only=True)
class ElfFacts:
    machine: str
    elf_class: int
    osabi: str
    is_shared: bool
    soname: str | None
    needed: tuple[str, ...]
    rpath: tuple[str, ...]
    runpath: tuple[str, ...]
    # Every GLIBC_x.y[.z] version the file needs, ascending, e.g. ((2, 2, 5), (2, 14), (2, 34)).
    glibc_versions: tuple[tuple[int, ...], ...]
    # (library, versions needed from it), in the order of the version-needed section.
    version_needs: tuple[tuple[str, tuple[str, ...]], ...]
    # Undefined symbols bound to the highest GLIBC version: the calls that set the requirement.
    highest_glibc_symbols: tuple[str, ...]

    @property
    def highest_glibc(self) -> tuple[int, ...] | None:
        return self.glibc_versions[-1] if self.glibc_versions else None


def binary_format(path: Path) -> BinaryFormat:
    with path.open("rb") as stream:
        head = stream.read(8)
    return format_of(head)


def format_of(head: bytes) -> BinaryFormat:
    """The format named by a file's first bytes (eight are enough)."""
    if head.startswith(ELF_MAGIC):
        return "elf"
    if head[:4] in _MACHO_MAGICS:
        return "macho"
    if head[:4] in _FAT_MAGICS and len(head) >= 8:
        (count,) = struct.unpack(">I", head[4:8])
        return "macho" if 0 < count < _MAX_FAT_ARCHES else "other"
    if head.startswith(_PE_MAGIC):
        return "pe"
    return "other"


def glibc_version(name: str) -> tuple[int, ...] | None:
    """(2, 34) for "GLIBC_2.34", (2, 2, 5) for "GLIBC_2.2.5", None for GLIBC_PRIVATE or others."""
    match = _GLIBC_VERSION.fullmatch(name)
    return tuple(int(part) for part in match.group(1).split(".")) if match else None


def read_elf(path: Path) -> ElfFacts:
    with path.open("rb") as stream:
        try:
            return _read(stream, path.stat().st_size)
        except _Malformed as err:
            raise ElfReadError(path, str(err)) from err
        # Malformed input surfaces from deep inside pyelftools as many exception types
        # (its own, construct's, struct's, IndexError, UnicodeDecodeError...).
        except Exception as err:
            raise ElfReadError(path, f"{type(err).__name__}: {err}") from err


def _read(stream: BinaryIO, size: int) -> ElfFacts:
    elf = ELFFile(stream)
    _check_extents(elf, size)
    dynamic = _dynamic_tags(elf)
    needs, indices = _version_needs(elf)
    versions = sorted({v for _, names in needs for name in names if (v := glibc_version(name)) is not None})
    highest = versions[-1] if versions else None
    highest_indices = {index for index, name in indices.items() if highest and glibc_version(name) == highest}
    return ElfFacts(
        machine=elf.header["e_machine"],
        elf_class=elf.elfclass,
        osabi=elf.header["e_ident"]["EI_OSABI"],
        is_shared=elf.header["e_type"] == "ET_DYN",
        soname=dynamic["DT_SONAME"][0] if dynamic["DT_SONAME"] else None,
        needed=tuple(dynamic["DT_NEEDED"]),
        rpath=_split_path(dynamic["DT_RPATH"]),
        runpath=_split_path(dynamic["DT_RUNPATH"]),
        glibc_versions=tuple(versions),
        version_needs=needs,
        highest_glibc_symbols=_symbols_with_version(elf, highest_indices),
    )


def _check_extents(elf: ELFFile, size: int) -> None:
    # pyelftools reads only what it is asked for, so a file cut inside a segment it never reads
    # (.data, say, in a file without section headers) parses fine, and the loader dies on it.
    for section in elf.iter_sections():
        if section["sh_type"] != "SHT_NOBITS" and section["sh_offset"] + section["sh_size"] > size:
            raise _Malformed(f"section {section.name or '?'} extends past the end of the file")
    for segment in elf.iter_segments():
        if segment["p_offset"] + segment["p_filesz"] > size:
            raise _Malformed(f"segment {segment['p_type']} extends past the end of the file")


def _dynamic_tags(elf: ELFFile) -> dict[str, list[str]]:
    tags: dict[str, list[str]] = {"DT_NEEDED": [], "DT_SONAME": [], "DT_RPATH": [], "DT_RUNPATH": []}
    attribute = {"DT_NEEDED": "needed", "DT_SONAME": "soname", "DT_RPATH": "rpath", "DT_RUNPATH": "runpath"}
    table: DynamicSection | DynamicSegment | None = next(
        (s for s in elf.iter_sections() if isinstance(s, DynamicSection)), None
    )
    # A binary with its section headers stripped still has the PT_DYNAMIC segment the loader uses.
    if table is None:
        table = next((s for s in elf.iter_segments() if isinstance(s, DynamicSegment)), None)
    if table is None:
        return tags
    for tag in table.iter_tags():
        kind = tag.entry.d_tag
        if kind in tags:
            tags[kind].append(getattr(tag, attribute[kind]))
    return tags


def _split_path(values: list[str]) -> tuple[str, ...]:
    return tuple(part for value in values for part in value.split(":") if part)


def _version_needs(elf: ELFFile) -> tuple[tuple[tuple[str, tuple[str, ...]], ...], dict[int, str]]:
    """Versions needed per library, and the needed version each symbol-version index stands for."""
    section = next((s for s in elf.iter_sections() if isinstance(s, GNUVerNeedSection)), None)
    if section is None:
        return (), {}
    needs: list[tuple[str, tuple[str, ...]]] = []
    indices: dict[int, str] = {}
    for verneed, auxiliaries in section.iter_versions():
        names = []
        for aux in auxiliaries:
            names.append(aux.name)
            indices[aux["vna_other"]] = aux.name
        needs.append((verneed.name or "", tuple(names)))
    return tuple(needs), indices


def _symbols_with_version(elf: ELFFile, indices: set[int]) -> tuple[str, ...]:
    if not indices:
        return ()
    versym = next((s for s in elf.iter_sections() if isinstance(s, GNUVerSymSection)), None)
    dynsym = elf.get_section_by_name(".dynsym")
    if versym is None or not isinstance(dynsym, SymbolTableSection):
        return ()
    # Reading the version array raw avoids building a pyelftools object per symbol,
    # which is slow for libraries with tens of thousands of them.
    entries = array("H", versym.data())
    if elf.little_endian != (sys.byteorder == "little"):
        entries.byteswap()
    count = dynsym.num_symbols()
    names = {
        dynsym.get_symbol(i).name
        for i, entry in enumerate(entries)
        if i < count and (entry & _VERSYM_INDEX) in indices
    }
    return tuple(sorted(names))
