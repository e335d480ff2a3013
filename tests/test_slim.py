"""slim's rules, one at a time, on package trees laid out here with ELF libraries gcc builds at test time.

Every test states the exact files removed and the exact files left: a rule that removes one file
too many (or one too few) fails it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

# pytest's default (prepend) import mode puts tests/ on sys.path: the audit tests' gcc helpers.
from audit.conftest import EM_AARCH64, Compiler, patch_machine

from builder.audit import audit_tree
from builder.runtimes import target
from builder.slim import slim

PY312 = target("python3.12", "x86_64")
TAG = "cpython-312-x86_64-linux-gnu"  # the one extension tag python3.12 x86_64 loads besides abi3
SOURCE = "int f(void) { return 1; }"
METADATA = ("METADATA", "RECORD", "WHEEL", "INSTALLER", "top_level.txt")


@pytest.fixture
def cc(tmp_path: Path) -> Compiler:
    return Compiler(tmp_path / "work")  # sources and link stubs stay outside the layer


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "layer" / "python").mkdir(parents=True)
    return tmp_path / "layer"


def write(root: Path, *paths: str, data: bytes = b"x = 1\n") -> None:
    for rel in paths:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def sizes(root: Path, paths: set[str]) -> int:
    return sum((root / rel).stat().st_size for rel in paths)


def dist_info(root: Path, name: str) -> set[str]:
    """A distribution's metadata as pip --target leaves it (its RECORD lists files slim removes)."""
    paths = {f"python/{name}.dist-info/{member}" for member in METADATA}
    write(root, *paths, data=b"Name: x\n")
    return paths


def test_bytecode_compiled_by_the_host_is_removed_and_sources_and_dist_info_stay(root: Path) -> None:
    kept = {
        "python/pkg/__init__.py",
        "python/pkg/sub/__init__.py",
        "python/pkg/sub/mod.py",
        "python/single.py",
    }
    write(root, *kept)
    kept |= dist_info(root, "pkg-1.0")
    # pip --target compiles with the host's Python (3.11, say), which the runtime never reads;
    # a stray .pyc/.pyo beside a source file is bytecode all the same.
    bytecode = {
        "python/pkg/__pycache__/__init__.cpython-311.pyc",
        "python/pkg/sub/__pycache__/mod.cpython-311.opt-1.pyc",
        "python/pkg/sub/__pycache__/mod.cpython-311.opt-2.pyc",
        "python/single.pyc",
        "python/legacy.pyo",
    }
    write(root, *bytecode, data=b"\x00" * 100)
    saved = sizes(root, bytecode)

    result = slim(root, PY312)

    assert sorted(result.removed) == sorted(bytecode)
    assert result.bytes_saved == saved
    assert result.problems == ()
    assert files(root) == kept
    assert list(root.rglob("__pycache__")) == []


def test_console_scripts_under_python_bin_are_removed(root: Path) -> None:
    # pip --target writes them with the host's interpreter in the shebang, and Lambda puts only
    # /opt/bin on PATH: a script under /opt/python/bin can never run.
    write(root, "python/bin/tool", "python/bin/sub/other", data=b"#!/usr/bin/python3.11\n")
    write(root, "python/pkg/__init__.py", "bin/kept-tool")

    result = slim(root, PY312)

    assert sorted(result.removed) == ["python/bin/sub/other", "python/bin/tool"]
    assert files(root) == {"python/pkg/__init__.py", "bin/kept-tool"}
    assert not (root / "python" / "bin").exists()


def test_extension_modules_for_other_pythons_oses_and_cpus_are_removed(cc: Compiler, root: Path) -> None:
    pkg = root / "python" / "pkg"
    write(root, "python/pkg/__init__.py")
    kept = {"python/pkg/__init__.py", *dist_info(root, "pkg-1.0")}
    for name in (f"_speedups.{TAG}.so", "_limited.abi3.so", "libhelper.so"):
        cc.library(pkg / name, SOURCE)
        kept.add(f"python/pkg/{name}")
    foreign = {
        # Told by the file name: another Python, another OS, another CPU.
        "python/pkg/_speedups.cpython-311-x86_64-linux-gnu.so",
        "python/pkg/_speedups.cpython-312-darwin.so",
        "python/pkg/_speedups.cpython-312-aarch64-linux-gnu.so",
        # Told by the file's own header: a name without a tag, an ELF file for another CPU.
        "python/pkg/lib/libnative.so.1",
    }
    for rel in foreign:
        cc.library(root / rel, SOURCE)
    patch_machine(root / "python/pkg/lib/libnative.so.1", EM_AARCH64)
    # Windows and macOS binaries, told by the name (.pyd) or by the format (Mach-O).
    write(root, "python/pkg/_speedups.cp312-win_amd64.pyd", data=b"MZ\x90\x00" + b"\x00" * 60)
    write(root, "python/pkg/.dylibs/libssl.3.dylib", data=b"\xcf\xfa\xed\xfe\x0c\x00\x00\x01" + b"\x00" * 56)
    foreign |= {"python/pkg/_speedups.cp312-win_amd64.pyd", "python/pkg/.dylibs/libssl.3.dylib"}
    saved = sizes(root, foreign)

    result = slim(root, PY312)

    assert sorted(result.removed) == sorted(foreign)
    assert result.bytes_saved == saved
    assert result.problems == ()  # _speedups still has the build python3.12 x86_64 loads
    assert files(root) == kept


def test_a_module_left_with_no_loadable_build_is_reported_as_no_compatible_binary(
    cc: Compiler, root: Path
) -> None:
    # aws-psycopg2's shape: builds for older Pythons only, none a python3.12 layer can load.
    write(root, "python/psycopg2/__init__.py")
    builds = {f"python/psycopg2/_psycopg.cpython-{v}-x86_64-linux-gnu.so" for v in ("39", "310", "311")}
    for rel in builds:
        cc.library(root / rel, SOURCE)

    result = slim(root, PY312)

    assert sorted(result.removed) == sorted(builds)
    assert files(root) == {"python/psycopg2/__init__.py"}
    assert [(p.code, p.path, p.severity) for p in result.problems] == [
        ("no-compatible-binary", "python/psycopg2/_psycopg", "error")
    ]
    message = result.problems[0].message
    assert (
        "cpython-310-x86_64-linux-gnu, cpython-311-x86_64-linux-gnu, cpython-39-x86_64-linux-gnu" in message
    )
    assert "python3.12 on x86_64" in message


def test_bundled_libraries_are_kept_exactly_when_a_remaining_binary_needs_them(
    cc: Compiler, root: Path
) -> None:
    libs = root / "python" / "pkg.libs"
    pkg = root / "python" / "pkg"
    write(root, "python/pkg/__init__.py")

    # Linked the way auditwheel leaves them: each binary finds pkg.libs/ through its RPATH.
    def bundled(file: str, *needs: str) -> None:
        cc.library(libs / file, SOURCE, f"-Wl,-soname,{file}", "-Wl,-rpath,$ORIGIN", *cc.needs(*needs))

    # Needed by the extension python3.12 loads: directly, and through another bundled library.
    bundled("libdirect-1a2b3c4d.so.1", "libtransitive-1a2b3c4d.so.2")
    bundled("libtransitive-1a2b3c4d.so.2")
    needs = cc.needs("libdirect-1a2b3c4d.so.1")
    cc.library(pkg / f"_ext.{TAG}.so", SOURCE, "-Wl,-rpath,$ORIGIN/../pkg.libs", *needs)
    # A library nothing names in DT_NEEDED: pkg/lib/libplugin.so is loaded with dlopen (ctypes).
    # It is outside <pkg>.libs/, so slim never removes it, and what it needs stays with it.
    bundled("libgomp-1a2b3c4d.so.1")
    needs = cc.needs("libgomp-1a2b3c4d.so.1")
    cc.library(pkg / "lib" / "libplugin.so", SOURCE, "-Wl,-rpath,$ORIGIN/../../pkg.libs", *needs)
    # Needed only by the cpython-311 build slim removes (and by what that one needs), or by nothing.
    bundled("libold-1a2b3c4d.so.1", "libchain-1a2b3c4d.so.1")
    bundled("libchain-1a2b3c4d.so.1")
    bundled("libunused-1a2b3c4d.so.1")
    cc.library(pkg / "_ext.cpython-311-x86_64-linux-gnu.so", SOURCE, *cc.needs("libold-1a2b3c4d.so.1"))
    kept = {
        "python/pkg/__init__.py",
        f"python/pkg/_ext.{TAG}.so",
        "python/pkg/lib/libplugin.so",
        "python/pkg.libs/libdirect-1a2b3c4d.so.1",
        "python/pkg.libs/libtransitive-1a2b3c4d.so.2",
        "python/pkg.libs/libgomp-1a2b3c4d.so.1",
        *dist_info(root, "pkg-1.0"),
    }
    removed = {
        "python/pkg/_ext.cpython-311-x86_64-linux-gnu.so",
        "python/pkg.libs/libold-1a2b3c4d.so.1",
        "python/pkg.libs/libchain-1a2b3c4d.so.1",
        "python/pkg.libs/libunused-1a2b3c4d.so.1",
    }
    saved = sizes(root, removed)

    result = slim(root, PY312)

    assert sorted(result.removed) == sorted(removed)
    assert result.bytes_saved == saved
    assert result.problems == ()
    assert files(root) == kept
    # What stays is complete: no remaining binary misses a library slim took away.
    assert audit_tree(root, PY312) == []


def test_a_file_with_elf_magic_that_cannot_be_parsed_is_kept_for_the_audit_to_report(
    cc: Compiler, root: Path
) -> None:
    write(root, "python/pkg/__init__.py")
    # A truncated extension module (an interrupted download) and a bundled library that is
    # nothing but the magic: slim cannot tell what either is for, so it deletes neither.
    truncated = cc.library(root / f"python/pkg/_broken.{TAG}.so", SOURCE)
    truncated.write_bytes(truncated.read_bytes()[:3000])
    write(root, "python/pkg.libs/libjunk-1a2b3c4d.so.1", data=b"\x7fELF" + b"\xff" * 60)
    # The name alone says another Python: that rule needs no parsing, and still applies.
    write(root, "python/pkg/_broken.cpython-311-x86_64-linux-gnu.so", data=b"\x7fELF" + b"\xff" * 60)
    unreadable = {f"python/pkg/_broken.{TAG}.so", "python/pkg.libs/libjunk-1a2b3c4d.so.1"}
    before = {rel: (root / rel).read_bytes() for rel in unreadable}

    result = slim(root, PY312)

    assert result.removed == ("python/pkg/_broken.cpython-311-x86_64-linux-gnu.so",)
    assert result.problems == ()  # slim reports nothing itself: the audit does, next
    assert files(root) == {"python/pkg/__init__.py", *unreadable}
    assert {rel: (root / rel).read_bytes() for rel in unreadable} == before
    problems = audit_tree(root, PY312)
    assert sorted((p.code, p.path, p.severity) for p in problems) == [
        ("unreadable-binary", rel, "error") for rel in sorted(unreadable)
    ]


def test_an_unparseable_binary_keeps_every_bundled_library_since_what_it_needs_is_unknown(
    cc: Compiler, root: Path
) -> None:
    write(root, "python/pkg/__init__.py")
    cc.library(
        root / "python/pkg.libs/libneeded-1a2b3c4d.so.1", SOURCE, "-Wl,-soname,libneeded-1a2b3c4d.so.1"
    )
    truncated = cc.library(
        root / f"python/pkg/_broken.{TAG}.so", SOURCE, *cc.needs("libneeded-1a2b3c4d.so.1")
    )
    truncated.write_bytes(truncated.read_bytes()[:3000])

    result = slim(root, PY312)

    assert result.removed == ()
    assert "python/pkg.libs/libneeded-1a2b3c4d.so.1" in files(root)


def test_an_unparseable_bundled_library_keeps_the_libraries_it_may_need(cc: Compiler, root: Path) -> None:
    write(root, "python/pkg/__init__.py")
    cc.library(root / "python/pkg.libs/libdep-1a2b3c4d.so.1", SOURCE, "-Wl,-soname,libdep-1a2b3c4d.so.1")
    middle = cc.library(
        root / "python/pkg.libs/libmid-1a2b3c4d.so.1", SOURCE, *cc.needs("libdep-1a2b3c4d.so.1")
    )
    middle.write_bytes(middle.read_bytes()[:3000])
    cc.library(root / f"python/pkg/_ext.{TAG}.so", SOURCE, *cc.needs("libmid-1a2b3c4d.so.1"))

    assert slim(root, PY312).removed == ()


def test_two_packages_bundling_a_library_of_the_same_name_each_keep_their_copy(
    cc: Compiler, root: Path
) -> None:
    # numpy and scipy have shipped the same grafted libgfortran: each extension's RPATH finds the
    # copy in its own package's .libs/, so neither copy is unused.
    kept = set()
    for package in ("pkga", "pkgb"):
        write(root, f"python/{package}/__init__.py")
        lib = f"python/{package}.libs/libshared-1a2b3c4d.so.1"
        cc.library(root / lib, SOURCE, "-Wl,-soname,libshared-1a2b3c4d.so.1")
        ext = f"python/{package}/_ext.{TAG}.so"
        rpath = f"-Wl,-rpath,$ORIGIN/../{package}.libs"
        cc.library(root / ext, SOURCE, rpath, *cc.needs("libshared-1a2b3c4d.so.1"))
        kept |= {f"python/{package}/__init__.py", lib, ext}

    result = slim(root, PY312)

    assert result.removed == ()
    assert files(root) == kept
    assert audit_tree(root, PY312) == []


def test_a_need_the_loader_cannot_meet_keeps_every_bundled_library(cc: Compiler, root: Path) -> None:
    # The extension names a library but has no RPATH to pkg.libs/: the audit reports missing-library,
    # and which file the extension expects is not slim's to guess.
    write(root, "python/pkg/__init__.py")
    for name in ("libdep-1a2b3c4d.so.1", "libunused-1a2b3c4d.so.1"):
        cc.library(root / "python/pkg.libs" / name, SOURCE, f"-Wl,-soname,{name}")
    cc.library(root / f"python/pkg/_ext.{TAG}.so", SOURCE, *cc.needs("libdep-1a2b3c4d.so.1"))
    before = audit_tree(root, PY312)

    assert slim(root, PY312).removed == ()
    assert [(p.code, p.path) for p in before] == [("missing-library", f"python/pkg/_ext.{TAG}.so")]
    assert audit_tree(root, PY312) == before


def test_a_bundled_library_found_through_an_inherited_rpath_stays(cc: Compiler, root: Path) -> None:
    # liba needs libb and says nothing of where it is; the extension that loads liba does.
    libs = root / "python/pkg.libs"
    write(root, "python/pkg/__init__.py")
    cc.library(libs / "libb-1a2b3c4d.so.1", SOURCE, "-Wl,-soname,libb-1a2b3c4d.so.1")
    needs = cc.needs("libb-1a2b3c4d.so.1")
    cc.library(libs / "liba-1a2b3c4d.so.1", SOURCE, "-Wl,-soname,liba-1a2b3c4d.so.1", *needs)
    rpath = "-Wl,--disable-new-dtags,-rpath,$ORIGIN/../pkg.libs"
    cc.library(root / f"python/pkg/_ext.{TAG}.so", SOURCE, rpath, *cc.needs("liba-1a2b3c4d.so.1"))

    assert slim(root, PY312).removed == ()
    assert audit_tree(root, PY312) == []
