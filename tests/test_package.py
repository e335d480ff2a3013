"""The deterministic zip (builder/package.py)."""

import hashlib
import os
import zipfile

import pytest

from builder.errors import UnpackableLayer
from builder.package import write_zip


def _tree(root, mtime):
    (root / "python" / "pkg").mkdir(parents=True)
    (root / "python" / "pkg" / "__init__.py").write_text("x = 1\n")
    (root / "python" / "pkg" / "data.bin").write_bytes(bytes(range(256)) * 50)
    (root / "bin").mkdir()
    tool = root / "bin" / "tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o700)
    for path in root.rglob("*"):
        os.utime(path, (mtime, mtime))
    return root


def test_zip_is_byte_identical_across_builds(tmp_path):
    a = write_zip(_tree(tmp_path / "a", 1_000_000), tmp_path / "a.zip")
    b = write_zip(_tree(tmp_path / "b", 2_000_000), tmp_path / "b.zip")
    assert a.zip_sha256 == b.zip_sha256
    assert hashlib.sha256((tmp_path / "a.zip").read_bytes()).hexdigest() == a.zip_sha256


def test_zip_entries_sorted_with_fixed_times_and_modes(tmp_path):
    result = write_zip(_tree(tmp_path / "t", 1_500_000), tmp_path / "t.zip")
    with zipfile.ZipFile(result.zip_path) as archive:
        infos = archive.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in infos}
    assert modes["bin/tool"] == 0o755 and modes["python/pkg/__init__.py"] == 0o644
    assert result.files["python/pkg/__init__.py"] == hashlib.sha256(b"x = 1\n").hexdigest()
    assert result.unzipped_bytes == 6 + 256 * 50 + 10


def test_symlinks_are_refused(tmp_path):
    tree = _tree(tmp_path / "t", 1)
    (tree / "python" / "link").symlink_to("pkg")
    with pytest.raises(UnpackableLayer, match="python/link is a symbolic link") as err:
        write_zip(tree, tmp_path / "t.zip")
    assert (err.value.exit_code, err.value.step) == (1, "package")
