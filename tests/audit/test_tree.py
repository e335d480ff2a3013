from __future__ import annotations

import os
from pathlib import Path

from builder.audit.elf import ElfFacts
from builder.audit.tree import LayerTree

from .conftest import Compiler

SOURCE = "int f(void) { return 1; }"


def test_file_at_is_the_layer_file_a_mounted_path_opens(cc: Compiler, layer: Path, tmp_path: Path) -> None:
    cc.library(layer / "lib/libdep.so.1.2", SOURCE)
    os.symlink("libdep.so.1.2", layer / "lib/libdep.so.1")
    os.symlink(cc.library(tmp_path / "host/libhost.so", SOURCE), layer / "lib/libhost.so")

    tree = LayerTree(layer)

    assert tree.file_at("/opt/lib/libdep.so.1") == "lib/libdep.so.1.2"
    assert tree.file_at("/opt/lib/../lib/libdep.so.1.2") == "lib/libdep.so.1.2"
    assert tree.file_at("/opt/lib/libhost.so") is None  # a link out of the layer
    assert tree.file_at("/opt/lib/absent.so") is None
    assert tree.file_at("/usr/lib/libdep.so.1.2") is None  # not where a layer is mounted
    assert tree.links == {
        "lib/libdep.so.1": "libdep.so.1.2",
        "lib/libhost.so": str(tmp_path / "host/libhost.so"),
    }


def test_each_elf_file_is_readable_or_unparseable_and_other_files_are_neither(
    cc: Compiler, layer: Path
) -> None:
    cc.library(layer / "python/pkg/_ok.so", SOURCE)
    (layer / "python/pkg/_cut.so").write_bytes(b"\x7fELF" + b"\xff" * 60)
    (layer / "python/pkg/mod.py").write_text("x = 1\n")

    tree = LayerTree(layer)

    assert [(rel, type(facts)) for rel, facts in tree.elves()] == [("python/pkg/_ok.so", ElfFacts)]
    assert [rel for rel, _ in tree.unparseable()] == ["python/pkg/_cut.so"]
    assert tree.binaries == {"python/pkg/_cut.so": "elf", "python/pkg/_ok.so": "elf"}
