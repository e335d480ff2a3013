from __future__ import annotations

import os
from pathlib import Path

import pytest

from builder.audit import audit_tree, highest_glibc
from builder.audit.elf import read_elf
from builder.audit.rules import UNZIPPED_LIMIT, ZIPPED_LIMIT
from builder.problems import Problem
from builder.runtimes import target

from .conftest import EM_AARCH64, Compiler, patch_machine, unpack

PY312 = target("python3.12", "x86_64")
PY312_ARM = target("python3.12", "arm64")
PY311 = target("python3.11", "x86_64")

LIBPQ = "python/psycopg2_binary.libs"
EXTENSION = "python/psycopg2/_psycopg.cpython-312-x86_64-linux-gnu.so"
SOURCE = "int f(void) { return 1; }"


def codes(problems: list[Problem]) -> list[str]:
    return sorted(p.code for p in problems)


def only(problems: list[Problem], code: str) -> list[Problem]:
    return [p for p in problems if p.code == code]


# --- real wheels --------------------------------------------------------------------------------


def test_psycopg2_binary_laid_out_under_python_has_no_problems(layer: Path, wheels: dict[str, Path]) -> None:
    unpack(wheels["psycopg2-x86_64"], layer)

    assert audit_tree(layer, PY312) == []


def test_psycopg2_binary_in_site_packages_has_no_problems(layer: Path, wheels: dict[str, Path]) -> None:
    unpack(wheels["psycopg2-x86_64"], layer, PY312.site_packages)

    assert audit_tree(layer, PY312) == []


def test_psycopg2_binary_for_arm64_has_no_problems(layer: Path, wheels: dict[str, Path]) -> None:
    unpack(wheels["psycopg2-aarch64"], layer)

    assert audit_tree(layer, PY312_ARM) == []


def test_a_deleted_bundled_library_is_missing(layer: Path, wheels: dict[str, Path]) -> None:
    unpack(wheels["psycopg2-x86_64"], layer)
    libpq = next((layer / LIBPQ).glob("libpq-*.so*"))
    libpq.unlink()

    problems = audit_tree(layer, PY312)

    assert codes(problems) == ["missing-library"]
    (problem,) = problems
    assert problem.path == EXTENSION
    assert libpq.name in problem.message
    assert f"/opt/{LIBPQ}" in problem.message
    assert "reinstall the package" in problem.hint


def test_every_user_of_a_deleted_library_is_reported(layer: Path, wheels: dict[str, Path]) -> None:
    unpack(wheels["psycopg2-x86_64"], layer)
    support = next((layer / LIBPQ).glob("libkrb5support-*.so*"))
    users = {
        f"{LIBPQ}/{lib.name}"
        for lib in (layer / LIBPQ).iterdir()
        if lib != support and support.name in read_elf(lib).needed
    }
    support.unlink()

    problems = audit_tree(layer, PY312)

    assert codes(problems) == ["missing-library"] * len(users)
    assert {p.path for p in problems} == users
    # These libraries have no RPATH of their own: they are searched for through libpq's.
    assert all("(loaded by " in p.message for p in problems)


def test_a_package_at_the_zip_root_is_bad_layout(layer: Path, wheels: dict[str, Path]) -> None:
    unpack(wheels["psycopg2-x86_64"], layer, "")

    problems = audit_tree(layer, PY312)

    assert set(codes(problems)) == {"bad-layout"}
    (package,) = [p for p in problems if p.path == "psycopg2/"]
    assert "/opt/psycopg2" in package.message
    assert "python/psycopg2" in package.hint
    assert "psycopg2_binary-2.9.11.dist-info/" in {p.path for p in problems}


def test_a_cp311_build_on_python312_is_abi_mismatch(layer: Path, wheels: dict[str, Path]) -> None:
    unpack(wheels["psycopg2-cp311"], layer)

    problems = audit_tree(layer, PY312)

    assert codes(problems) == ["abi-mismatch"]
    (problem,) = problems
    assert problem.path == "python/psycopg2/_psycopg.cpython-311-x86_64-linux-gnu.so"
    assert "cpython-311" in problem.message
    assert ".cpython-312-x86_64-linux-gnu.so" in problem.message
    assert "cp312" in problem.hint


def test_an_aarch64_build_on_x86_64_is_arch_mismatch(layer: Path, wheels: dict[str, Path]) -> None:
    unpack(wheels["psycopg2-aarch64"], layer)
    elves = [p for p in (layer / "python").rglob("*.so*") if p.read_bytes()[:4] == b"\x7fELF"]

    problems = audit_tree(layer, PY312)

    # Nothing else: an arm64 file's name, glibc and libraries do not matter on x86_64.
    assert codes(problems) == ["arch-mismatch"] * len(elves)
    extension = next(p for p in problems if "_psycopg" in p.path)
    assert "EM_AARCH64" in extension.message
    assert "EM_X86_64" in extension.message
    assert "arm64" in extension.hint


def test_a_macos_build_is_foreign(layer: Path, wheels: dict[str, Path]) -> None:
    unpack(wheels["psycopg2-macos"], layer)

    problems = audit_tree(layer, PY312)

    assert set(codes(problems)) == {"foreign-binary"}
    paths = {p.path for p in problems}
    assert "python/psycopg2/_psycopg.cpython-312-darwin.so" in paths
    assert any(path.startswith("python/psycopg2/.dylibs/libpq") for path in paths)
    assert all("Mach-O" in p.message for p in problems)


def test_numpy_for_glibc_2_28_is_too_new_for_python311(layer: Path, wheels: dict[str, Path]) -> None:
    unpack(wheels["numpy-cp311"], layer)

    problems = audit_tree(layer, PY311)

    assert set(codes(problems)) == {"glibc-too-new"}
    umath = next(p for p in problems if "_multiarray_umath" in p.path)
    assert "GLIBC_2.27" in umath.message
    assert "glibc 2.26" in umath.message
    assert "@GLIBC_2.27" in umath.message
    assert "numpy" in umath.hint
    assert "manylinux_2_26" in umath.hint
    assert highest_glibc(layer) == (2, 27)


def test_the_same_numpy_passes_the_glibc_check_on_python312(layer: Path, wheels: dict[str, Path]) -> None:
    unpack(wheels["numpy-cp311"], layer)

    problems = audit_tree(layer, PY312)

    assert only(problems, "glibc-too-new") == []
    # It is still a cp311 build.
    assert only(problems, "abi-mismatch")


# --- glibc --------------------------------------------------------------------------------------


NEW_GLIBC = """
#define _GNU_SOURCE
#include <unistd.h>
int closer(void) { return close_range(3, 3, 0); }
"""


def test_glibc_too_new_reads_the_symbol_versions(cc: Compiler, layer: Path) -> None:
    cc.library(layer / "python/closer/_impl.so", NEW_GLIBC)

    on_311 = audit_tree(layer, PY311)
    on_312 = audit_tree(layer, PY312)

    assert codes(on_311) == ["glibc-too-new"]
    assert "GLIBC_2.34 (from libc.so.6) for close_range@GLIBC_2.34" in on_311[0].message
    assert "closer" in on_311[0].hint
    assert on_312 == []
    assert highest_glibc(layer) == (2, 34)


def test_highest_glibc_of_a_tree_without_binaries_is_none(layer: Path) -> None:
    (layer / "python").mkdir()
    (layer / "python" / "mod.py").write_text("x = 1\n")

    assert highest_glibc(layer) is None


# --- the loader's search ------------------------------------------------------------------------


def test_a_library_next_to_its_user_needs_origin_in_the_rpath(cc: Compiler, layer: Path) -> None:
    pkg = layer / "python/pkg"
    cc.library(pkg / "libdep.so.1", SOURCE, "-Wl,-soname,libdep.so.1")
    link = ["-Wl,--no-as-needed", f"-L{pkg}", "-l:libdep.so.1"]
    cc.library(pkg / "_plain.so", SOURCE, *link)
    cc.library(pkg / "_origin.so", SOURCE, *link, "-Wl,-rpath,$ORIGIN")

    problems = audit_tree(layer, PY312)

    assert codes(problems) == ["missing-library"]
    assert problems[0].path == "python/pkg/_plain.so"
    assert "libdep.so.1" in problems[0].message
    assert "/opt/lib" in problems[0].message


def test_the_layer_lib_dir_is_on_the_library_path(cc: Compiler, layer: Path) -> None:
    cc.library(layer / "lib/libdep.so.1", SOURCE, "-Wl,-soname,libdep.so.1")
    os.symlink("libdep.so.1", layer / "lib/libdep.so")
    cc.library(layer / "python/pkg/_ext.so", SOURCE, "-Wl,--no-as-needed", f"-L{layer / 'lib'}", "-ldep")
    cc.executable(
        layer / "bin/tool",
        "int main(void) { return 0; }",
        "-Wl,--no-as-needed",
        f"-L{layer / 'lib'}",
        "-ldep",
    )

    assert audit_tree(layer, PY312) == []

    (layer / "lib/libdep.so").unlink()
    (layer / "lib/libdep.so.1").unlink()
    assert {p.path for p in only(audit_tree(layer, PY312), "missing-library")} == {
        "bin/tool",
        "python/pkg/_ext.so",
    }


@pytest.mark.parametrize(("dtags", "found"), [("--disable-new-dtags", True), ("--enable-new-dtags", False)])
def test_rpath_is_inherited_by_dependencies_runpath_is_not(
    cc: Compiler, layer: Path, dtags: str, found: bool
) -> None:
    # _ext -> liba -> libb, both in pkg.libs; only _ext says where pkg.libs is. glibc searches
    # the RPATH of the loading chain for liba's needs, but never another object's RUNPATH.
    libs = layer / "python/pkg.libs"
    cc.library(libs / "libb.so.1", SOURCE, "-Wl,-soname,libb.so.1")
    cc.library(
        libs / "liba.so.1", SOURCE, "-Wl,-soname,liba.so.1", "-Wl,--no-as-needed", f"-L{libs}", "-l:libb.so.1"
    )
    cc.library(
        layer / "python/pkg/_ext.so",
        SOURCE,
        "-Wl,--no-as-needed",
        f"-L{libs}",
        "-l:liba.so.1",
        f"-Wl,{dtags},-rpath,$ORIGIN/../pkg.libs",
    )

    problems = audit_tree(layer, PY312)

    if found:
        assert problems == []
    else:
        assert codes(problems) == ["missing-library"]
        assert problems[0].path == "python/pkg.libs/liba.so.1"
        assert "loaded by python/pkg/_ext.so" in problems[0].message
        assert "libb.so.1" in problems[0].message


def test_a_library_for_another_cpu_is_skipped_by_the_search(cc: Compiler, layer: Path) -> None:
    cc.library(layer / "lib/libdep.so.1", SOURCE, "-Wl,-soname,libdep.so.1")
    cc.library(
        layer / "python/pkg/_ext.so", SOURCE, "-Wl,--no-as-needed", f"-L{layer / 'lib'}", "-l:libdep.so.1"
    )
    patch_machine(layer / "lib/libdep.so.1", EM_AARCH64)

    problems = audit_tree(layer, PY312)

    assert codes(problems) == ["arch-mismatch", "missing-library"]
    missing = only(problems, "missing-library")[0]
    assert missing.path == "python/pkg/_ext.so"
    assert "lib/libdep.so.1 has that name but is no EM_X86_64 ELF library" in missing.message


def test_runtime_libraries_depend_on_the_runtime_os(cc: Compiler, layer: Path) -> None:
    cc.library(layer / "python/pkg/_ext.so", SOURCE, *cc.needs("libssl.so.3", "libstdc++.so.6", "libz.so.1"))

    assert audit_tree(layer, PY312) == []
    on_311 = audit_tree(layer, PY311)
    assert codes(on_311) == ["missing-library"]
    assert "libssl.so.3" in on_311[0].message
    assert "python3.11" in on_311[0].message


def test_a_library_the_runtime_lacks_is_missing(cc: Compiler, layer: Path) -> None:
    cc.library(layer / "python/pkg/_ext.so", SOURCE, *cc.needs("libxml2.so.2"))

    problems = audit_tree(layer, PY312)

    assert codes(problems) == ["missing-library"]
    assert "python/pkg/_ext.so needs libxml2.so.2" in problems[0].message
    assert "lib/" in problems[0].hint


# --- names and formats of extension modules ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "mismatch"),
    [
        ("_x.cpython-312-x86_64-linux-gnu.so", False),
        ("_x.abi3.so", False),
        ("_x.so", False),
        ("libhelper-1a2b3c4d.so.1.2", False),
        ("_x.cpython-311-x86_64-linux-gnu.so", True),
        ("_x.cpython-36m-x86_64-linux-gnu.so", True),
        ("_x.cpython-313t-x86_64-linux-gnu.so", True),
        ("_x.pypy310-pp73-x86_64-linux-gnu.so", True),
        # An x86_64 file whose name says aarch64: CPython never looks at it.
        ("_x.cpython-312-aarch64-linux-gnu.so", True),
        ("_x.cpython-312-darwin.so", True),
    ],
)
def test_extension_module_names(cc: Compiler, layer: Path, name: str, mismatch: bool) -> None:
    cc.library(layer / "python/pkg" / name, SOURCE)

    problems = audit_tree(layer, PY312)

    assert codes(problems) == (["abi-mismatch"] if mismatch else [])
    if mismatch:
        assert "import" in problems[0].message and "_x" in problems[0].message


def test_linking_another_pythons_library_is_abi_mismatch(cc: Compiler, layer: Path) -> None:
    cc.library(layer / "python/pkg/_old.so", SOURCE, *cc.needs("libpython3.11.so.1.0"))
    cc.library(layer / "python/pkg/_new.so", SOURCE, *cc.needs("libpython3.12.so.1.0"))

    problems = audit_tree(layer, PY312)

    assert codes(problems) == ["abi-mismatch"]
    assert problems[0].path == "python/pkg/_old.so"
    assert "libpython3.11.so.1.0" in problems[0].message


def test_a_windows_extension_is_foreign(layer: Path) -> None:
    pyd = layer / "python/pkg/_x.cp310-win_amd64.pyd"
    pyd.parent.mkdir(parents=True)
    pyd.write_bytes(b"MZ" + b"\0" * 62)

    problems = audit_tree(layer, PY312)

    assert codes(problems) == ["foreign-binary"]
    assert "PE (Windows)" in problems[0].message


def test_an_elf_file_for_another_os_is_foreign(cc: Compiler, layer: Path) -> None:
    lib = cc.library(layer / "lib/libbsd.so", SOURCE)
    data = bytearray(lib.read_bytes())
    data[7] = 9  # EI_OSABI: FreeBSD
    lib.write_bytes(bytes(data))

    problems = audit_tree(layer, PY312)

    assert codes(problems) == ["foreign-binary"]
    assert "FREEBSD" in problems[0].message


def test_a_truncated_binary_is_unreadable(cc: Compiler, layer: Path) -> None:
    lib = cc.library(layer / "python/pkg/_x.so", NEW_GLIBC)
    lib.write_bytes(lib.read_bytes()[:3000])

    problems = audit_tree(layer, PY312)

    assert codes(problems) == ["unreadable-binary"]
    assert problems[0].path == "python/pkg/_x.so"
    assert "truncated" in problems[0].hint


# --- layout -------------------------------------------------------------------------------------


def write(root: Path, *paths: str) -> None:
    for rel in paths:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x = 1\n")


def test_site_packages_for_another_python_is_bad_layout(layer: Path) -> None:
    write(layer, "python/lib/python3.11/site-packages/mod.py", "python/lib/python3.12/site-packages/ok.py")

    problems = audit_tree(layer, PY312)

    assert [(p.code, p.path) for p in problems] == [("bad-layout", "python/lib/python3.11/")]
    assert "python/lib/python3.12/site-packages" in problems[0].message


@pytest.mark.parametrize(
    ("paths", "flagged"),
    [
        (["mod.py"], "mod.py"),
        (["pkg/__init__.py"], "pkg/"),
        (["site-packages/pkg/__init__.py"], "site-packages/"),
        (["python/site-packages/pkg/__init__.py"], "python/site-packages/"),
        (["python/python/pkg/__init__.py"], "python/python/"),
        (["lib/python3.12/site-packages/pkg/__init__.py"], "lib/python3.12/"),
        (["lib/pkg/__init__.py"], "lib/pkg/"),
    ],
)
def test_python_code_off_sys_path_is_bad_layout(layer: Path, paths: list[str], flagged: str) -> None:
    write(layer, *paths)

    problems = audit_tree(layer, PY312)

    assert [(p.code, p.path) for p in problems] == [("bad-layout", flagged)]


def test_other_top_level_content_is_left_alone(layer: Path) -> None:
    write(layer, "python/pkg/__init__.py", "python/single.py", "extensions/my-extension", "README.md")
    (layer / "lib/pkgconfig").mkdir(parents=True)

    assert audit_tree(layer, PY312) == []


# --- size ---------------------------------------------------------------------------------------


def sparse(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as stream:
        stream.truncate(size)


def test_an_unzipped_layer_over_250_mb_is_an_error(layer: Path) -> None:
    sparse(layer / "python/data/blob.bin", UNZIPPED_LIMIT - 10)
    sparse(layer / "python/data/more.bin", 10)
    assert audit_tree(layer, PY312) == []

    sparse(layer / "python/data/more.bin", 11)
    problems = audit_tree(layer, PY312)

    assert codes(problems) == ["size-limit"]
    assert problems[0].severity == "error"
    assert "262144000 bytes" in problems[0].message


def test_a_zip_over_50_mb_is_a_warning(layer: Path) -> None:
    write(layer, "python/mod.py")

    assert audit_tree(layer, PY312, zipped_bytes=ZIPPED_LIMIT) == []
    (problem,) = audit_tree(layer, PY312, zipped_bytes=ZIPPED_LIMIT + 1)
    assert problem.code == "size-limit"
    assert problem.severity == "warning"
    assert "S3" in problem.hint


def test_a_missing_root_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError):
        audit_tree(tmp_path / "absent", PY312)


def test_symlinks_out_of_the_layer_are_not_followed(cc: Compiler, layer: Path, tmp_path: Path) -> None:
    outside = cc.library(tmp_path / "elsewhere/libdep.so.1", SOURCE, "-Wl,-soname,libdep.so.1")
    (layer / "lib").mkdir()
    os.symlink(outside, layer / "lib/libdep.so.1")
    cc.library(
        layer / "python/pkg/_ext.so", SOURCE, "-Wl,--no-as-needed", f"-L{outside.parent}", "-l:libdep.so.1"
    )

    problems = audit_tree(layer, PY312)

    # Not followed for the library lookup, and the link itself is what zipping would ship blind.
    assert sorted(codes(problems)) == ["escaping-link", "missing-library"]


def test_a_link_to_a_host_library_outside_the_layer_is_not_a_pass(
    cc: Compiler, layer: Path, tmp_path: Path
) -> None:
    """python/pkg/_ext.so linking to a library built for this host: zipping it ships that file unseen."""
    host_built = cc.library(tmp_path / "host/_ext.so", SOURCE)
    (layer / "python/pkg").mkdir(parents=True)
    os.symlink(host_built, layer / "python/pkg/_ext.cpython-312-x86_64-linux-gnu.so")
    os.symlink("nowhere.so", layer / "python/pkg/dangling.so")

    problems = [p for p in audit_tree(layer, PY312) if p.code == "escaping-link"]

    assert [p.path for p in problems] == [
        "python/pkg/_ext.cpython-312-x86_64-linux-gnu.so",
        "python/pkg/dangling.so",
    ]
    assert all(p.severity == "error" for p in problems)


def test_a_folder_that_cannot_be_read_is_reported_not_skipped(
    layer: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As root every folder is readable, so the refusal is made here: listing python/pkg raises
    PermissionError, as it does for a user without the right (Lambda reads layers unprivileged)."""
    (layer / "python/pkg").mkdir(parents=True)
    (layer / "python/pkg/__init__.py").write_text("")
    (layer / "python/ok.py").write_text("")
    real_scandir = os.scandir

    def scandir(path: object = ".") -> object:
        if str(path).endswith("python/pkg"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", scandir)
    problems = audit_tree(layer, PY312)
    assert [(p.code, p.path, p.severity) for p in problems] == [("unreadable", "python/pkg", "error")]
