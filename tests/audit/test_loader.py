"""The loader's walk, asked directly: what each binary needs, where it is found, through which chain."""

from __future__ import annotations

from pathlib import Path

from builder.audit.loader import Loader, Lookup, entry_points, is_bundled
from builder.audit.tree import LayerTree
from builder.runtimes import target

from .conftest import EM_AARCH64, Compiler, patch_machine

PY312 = target("python3.12", "x86_64")
SOURCE = "int f(void) { return 1; }"
EXT = "python/pkg/_ext.so"


def walk(layer: Path, start: str) -> list[Lookup]:
    """The walk from start, less the runtime's libraries (gcc links libc.so.6 into everything)."""
    return [lookup for lookup in Loader(LayerTree(layer), PY312).walk(start) if not lookup.search.in_runtime]


def test_the_walk_follows_what_it_finds_with_the_chain_that_loaded_it(cc: Compiler, layer: Path) -> None:
    # _ext -> liba -> libb in pkg.libs, found through _ext's RPATH, which liba inherits.
    libs = layer / "python/pkg.libs"
    cc.library(libs / "libb.so.1", SOURCE, "-Wl,-soname,libb.so.1")
    cc.library(libs / "liba.so.1", SOURCE, "-Wl,-soname,liba.so.1", *cc.needs("libb.so.1"))
    cc.library(
        layer / EXT, SOURCE, *cc.needs("liba.so.1"), "-Wl,--disable-new-dtags,-rpath,$ORIGIN/../pkg.libs"
    )

    lookups = walk(layer, EXT)

    assert [(lookup.name, lookup.chain, lookup.search.found) for lookup in lookups] == [
        ("liba.so.1", (EXT,), "python/pkg.libs/liba.so.1"),
        ("libb.so.1", ("python/pkg.libs/liba.so.1", EXT), "python/pkg.libs/libb.so.1"),
    ]
    assert lookups[0].search.tried == ("/opt/python/pkg.libs",)


def test_the_runtimes_libraries_are_never_looked_for_in_the_layer(cc: Compiler, layer: Path) -> None:
    cc.library(layer / "lib/libc.so.6", SOURCE)  # a copy Lambda's LD_LIBRARY_PATH never reaches first
    cc.library(layer / EXT, SOURCE, *cc.needs("libc.so.6"))

    (lookup,) = Loader(LayerTree(layer), PY312).walk(EXT)

    assert (lookup.name, lookup.search.found, lookup.search.in_runtime) == ("libc.so.6", None, True)


def test_a_name_already_loaded_is_not_looked_for_again(cc: Compiler, layer: Path) -> None:
    # Both _ext and liba need libb; the second need reuses what the first loaded.
    cc.library(layer / "lib/libb.so.1", SOURCE, "-Wl,-soname,libb.so.1")
    cc.library(layer / "lib/liba.so.1", SOURCE, "-Wl,-soname,liba.so.1", *cc.needs("libb.so.1"))
    cc.library(layer / EXT, SOURCE, *cc.needs("libb.so.1", "liba.so.1"))

    assert [(lookup.name, lookup.search.found) for lookup in walk(layer, EXT)] == [
        ("libb.so.1", "lib/libb.so.1"),
        ("liba.so.1", "lib/liba.so.1"),
    ]


def test_a_name_found_nowhere_says_where_it_was_looked_for(cc: Compiler, layer: Path) -> None:
    cc.library(layer / "lib/libdep.so.1", SOURCE, "-Wl,-soname,libdep.so.1")
    patch_machine(layer / "lib/libdep.so.1", EM_AARCH64)
    cc.library(layer / EXT, SOURCE, *cc.needs("libdep.so.1"), "-Wl,--enable-new-dtags,-rpath,$ORIGIN")

    (lookup,) = walk(layer, EXT)

    assert lookup.search.found is None
    assert not lookup.search.in_runtime
    # LD_LIBRARY_PATH's layer entry before the RUNPATH; the file there is for another CPU.
    assert lookup.search.tried == ("/opt/lib", "/opt/python/pkg")
    assert lookup.search.wrong_arch == ("lib/libdep.so.1",)


def test_a_name_with_a_slash_is_a_path_from_the_working_directory(cc: Compiler, layer: Path) -> None:
    cc.library(layer / "lib/libdep.so.1", SOURCE, "-Wl,-soname,libdep.so.1")
    cc.library(layer / EXT, SOURCE, *cc.needs("libdep.so.1"))

    loader = Loader(LayerTree(layer), PY312)

    assert loader.search("/opt/lib/libdep.so.1", (EXT,)).found == "lib/libdep.so.1"
    assert loader.search("../../opt/lib/libdep.so.1", (EXT,)).found == "lib/libdep.so.1"
    assert loader.search("lib/libdep.so.1", (EXT,)).tried == ("/var/task/lib",)


def test_entry_points_are_what_nothing_in_the_layer_needs_and_not_bundled(cc: Compiler, layer: Path) -> None:
    cc.library(layer / "python/pkg.libs/libgrafted.so.1", SOURCE, "-Wl,-soname,libgrafted.so.1")
    cc.library(layer / "lib/libdep.so.1", SOURCE, "-Wl,-soname,libdep.so.1")
    cc.library(layer / EXT, SOURCE, *cc.needs("libdep.so.1"))
    cc.library(layer / "python/pkg/_other.so", SOURCE)
    cc.library(layer / "python/pkg/_arm.so", SOURCE)
    patch_machine(layer / "python/pkg/_arm.so", EM_AARCH64)

    assert entry_points(LayerTree(layer), PY312) == ["python/pkg/_ext.so", "python/pkg/_other.so"]


def test_bundled_means_inside_a_libs_folder() -> None:
    assert is_bundled("python/pkg.libs/libpq-9b38f5e3.so.5.17")
    assert is_bundled("python/lib/python3.12/site-packages/pkg.libs/libz.so.1")
    assert not is_bundled("python/pkg/_ext.so")
    assert not is_bundled("lib/libz.so.1")
