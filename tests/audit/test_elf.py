from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from builder.audit.elf import ElfReadError, binary_format, format_of, glibc_version, read_elf

from .conftest import Compiler

# close_range arrived in glibc 2.34, memfd_create in 2.27; the host has 2.36.
NEW_GLIBC = """
#define _GNU_SOURCE
#include <sys/mman.h>
#include <unistd.h>
int use_new_calls(void) { return close_range(3, 3, 0) + memfd_create("x", 0); }
"""


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x7fELF\x02\x01\x01\x00", "elf"),
        (b"\xcf\xfa\xed\xfe\x0c\x00\x00\x01", "macho"),  # 64-bit little-endian (arm64, x86_64)
        (b"\xce\xfa\xed\xfe\x07\x00\x00\x00", "macho"),
        (b"\xfe\xed\xfa\xce\x00\x00\x00\x12", "macho"),
        (b"\xfe\xed\xfa\xcf\x01\x00\x00\x07", "macho"),
        (b"\xca\xfe\xba\xbe" + struct.pack(">I", 2), "macho"),  # universal: x86_64 + arm64
        (b"\xca\xfe\xba\xbe\x00\x00\x00\x34", "other"),  # a Java class file, version 52
        (b"MZ\x90\x00\x03\x00\x00\x00", "pe"),
        (b"import os\n", "other"),
        (b"\x7fEL", "other"),
        (b"", "other"),
    ],
)
def test_format_is_told_by_magic(head: bytes, expected: str) -> None:
    assert format_of(head) == expected


def test_binary_format_reads_real_files(cc: Compiler, tmp_path: Path, wheels: dict[str, Path]) -> None:
    elf = cc.library(tmp_path / "libx.so", "int x(void) { return 1; }")
    with zipfile.ZipFile(wheels["psycopg2-macos"]) as archive:
        archive.extract("psycopg2/_psycopg.cpython-312-darwin.so", tmp_path)
    script = tmp_path / "setup.py"
    script.write_text("print('hi')\n")

    assert binary_format(elf) == "elf"
    assert binary_format(tmp_path / "psycopg2" / "_psycopg.cpython-312-darwin.so") == "macho"
    assert binary_format(script) == "other"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("GLIBC_2.2.5", (2, 2, 5)),
        ("GLIBC_2.34", (2, 34)),
        ("GLIBC_2.3", (2, 3)),
        ("GLIBC_PRIVATE", None),
        ("GLIBCXX_3.4.30", None),
        ("CXXABI_1.3", None),
    ],
)
def test_glibc_version_names_parse_as_int_tuples(name: str, expected: tuple[int, ...] | None) -> None:
    assert glibc_version(name) == expected


def test_dynamic_facts_of_a_compiled_library(cc: Compiler, tmp_path: Path) -> None:
    lib = cc.library(
        tmp_path / "libthing.so.1",
        "int thing(void) { return 1; }",
        "-Wl,-soname,libthing.so.1",
        *cc.needs("libdep.so.7"),
    )

    facts = read_elf(lib)

    assert facts.machine == "EM_X86_64"
    assert facts.elf_class == 64
    assert facts.osabi == "ELFOSABI_SYSV"
    assert facts.is_shared
    assert facts.soname == "libthing.so.1"
    assert "libdep.so.7" in facts.needed
    assert facts.rpath == ()
    assert facts.runpath == ()


def test_an_executable_is_not_shared(cc: Compiler, tmp_path: Path) -> None:
    exe = cc.executable(tmp_path / "tool", "int main(void) { return 0; }", "-no-pie")

    facts = read_elf(exe)

    assert not facts.is_shared
    assert facts.soname is None
    assert "libc.so.6" in facts.needed


def test_rpath_entries_are_split_on_colons(cc: Compiler, tmp_path: Path) -> None:
    lib = cc.library(
        tmp_path / "libr.so",
        "int r(void) { return 1; }",
        "-Wl,--disable-new-dtags,-rpath,$ORIGIN/../a.libs:/opt/lib",
    )

    facts = read_elf(lib)

    assert facts.rpath == ("$ORIGIN/../a.libs", "/opt/lib")
    assert facts.runpath == ()


def test_runpath_is_told_apart_from_rpath(cc: Compiler, tmp_path: Path) -> None:
    lib = cc.library(
        tmp_path / "librun.so", "int r(void) { return 1; }", "-Wl,--enable-new-dtags,-rpath,$ORIGIN"
    )

    facts = read_elf(lib)

    assert facts.runpath == ("$ORIGIN",)
    assert facts.rpath == ()


def test_glibc_versions_come_from_the_version_needed_section(cc: Compiler, tmp_path: Path) -> None:
    lib = cc.library(tmp_path / "libnew.so", NEW_GLIBC)

    facts = read_elf(lib)

    # x86_64's baseline symbol version has three parts and sorts below 2.3.
    assert facts.glibc_versions[0] == (2, 2, 5)
    assert {(2, 27), (2, 34)} <= set(facts.glibc_versions)
    assert facts.glibc_versions == tuple(sorted(facts.glibc_versions))
    assert facts.highest_glibc == (2, 34)
    assert facts.highest_glibc_symbols == ("close_range",)
    assert "GLIBC_2.34" in dict(facts.version_needs)["libc.so.6"]


def test_a_library_without_glibc_needs_has_no_highest(cc: Compiler, tmp_path: Path) -> None:
    lib = cc.library(tmp_path / "libpure.so", "int pure(int x) { return x + 1; }", "-nostdlib")

    facts = read_elf(lib)

    assert facts.glibc_versions == ()
    assert facts.highest_glibc is None
    assert facts.highest_glibc_symbols == ()


def test_a_real_aarch64_extension(tmp_path: Path, wheels: dict[str, Path]) -> None:
    with zipfile.ZipFile(wheels["psycopg2-aarch64"]) as archive:
        name = next(n for n in archive.namelist() if n.startswith("psycopg2/_psycopg."))
        archive.extract(name, tmp_path)

    facts = read_elf(tmp_path / name)

    assert facts.machine == "EM_AARCH64"
    assert facts.elf_class == 64
    assert facts.rpath == ("$ORIGIN/../psycopg2_binary.libs",)
    assert any(n.startswith("libpq-") for n in facts.needed)
    assert facts.highest_glibc is not None and facts.highest_glibc <= (2, 17)


@pytest.mark.parametrize("keep", [8, 64, 1000, "half", "all but one"])
def test_truncated_files_raise_elf_read_error(cc: Compiler, tmp_path: Path, keep: int | str) -> None:
    data = cc.library(tmp_path / "libfull.so", NEW_GLIBC).read_bytes()
    size = {"half": len(data) // 2, "all but one": len(data) - 1}.get(keep, keep)
    assert isinstance(size, int)
    cut = tmp_path / "libcut.so"
    cut.write_bytes(data[:size])

    with pytest.raises(ElfReadError) as caught:
        read_elf(cut)

    assert caught.value.path == cut
    assert str(cut) in str(caught.value)


def test_a_cut_the_parser_would_not_notice_is_caught(cc: Compiler, tmp_path: Path) -> None:
    data = bytearray(cc.library(tmp_path / "libfull.so", NEW_GLIBC).read_bytes())
    # Without section headers only the segments are left; cut the last loaded one short, past
    # the dynamic table, so everything pyelftools reads is intact (glibc dies on it with SIGBUS).
    struct.pack_into("<Q", data, 0x28, 0)  # e_shoff
    struct.pack_into("<HH", data, 0x3C, 0, 0)  # e_shnum, e_shstrndx
    segments = list(ELFFile(io.BytesIO(bytes(data))).iter_segments())
    loaded_end = max(s["p_offset"] + s["p_filesz"] for s in segments if s["p_type"] == "PT_LOAD")
    dynamic = next(s for s in segments if s["p_type"] == "PT_DYNAMIC")
    assert dynamic["p_offset"] + dynamic["p_filesz"] < loaded_end - 1
    cut = tmp_path / "libcut.so"
    cut.write_bytes(bytes(data[: loaded_end - 1]))

    with pytest.raises(ElfReadError, match="extends past the end of the file"):
        read_elf(cut)


def test_garbage_after_the_magic_raises_elf_read_error(tmp_path: Path) -> None:
    fake = tmp_path / "libfake.so"
    fake.write_bytes(b"\x7fELF" + b"\xff" * 200)

    with pytest.raises(ElfReadError):
        read_elf(fake)
