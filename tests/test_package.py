import hashlib
import importlib.metadata
import os
import tomllib
import zipfile
from pathlib import Path

import pytest

import builder
from builder import package
from builder.package import cache_key, write_zip, zip_matches, zip_stamp


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
    with pytest.raises(ValueError, match="symbolic link"):
        write_zip(tree, tmp_path / "t.zip")


KEY_INPUTS = dict(
    requirements_text="a==1\n",
    runtime="python3.12",
    arch="x86_64",
    backend="uv",
    data_texts=("{}", "[]"),
    validate=True,
    import_check="auto",
)


def test_cache_key_changes_with_each_input():
    base = KEY_INPUTS
    variants = [
        ("requirements_text", "a==2\n"),
        ("runtime", "python3.11"),
        ("arch", "arm64"),
        ("backend", "docker"),
        ("data_texts", ("{ }", "[]")),  # the catalogue: marker environments, tags
        ("data_texts", ("{}", "[ ]")),  # the base libraries
        ("validate", False),
        ("import_check", "interpreter"),
    ]
    keys = {cache_key(**base)} | {cache_key(**{**base, field: value}) for field, value in variants}
    assert len(keys) == len(variants) + 1


def test_cache_key_changes_with_the_tool_version(monkeypatch: pytest.MonkeyPatch) -> None:
    # A new lambdakit may slim, audit or zip differently: its first build must not take an
    # older release's layer as up to date. The key reads the version package.py imported.
    before = cache_key(**KEY_INPUTS)
    assert cache_key(**KEY_INPUTS) == before  # nothing else in the key varies between calls

    monkeypatch.setattr(package, "__version__", builder.__version__ + ".post1")

    assert cache_key(**KEY_INPUTS) != before


def test_the_version_is_written_once_and_is_the_one_in_the_cache_key() -> None:
    # pyproject.toml reads builder.__version__: a release bumps one place, and the cache key sees it.
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert package.__version__ == builder.__version__ == importlib.metadata.version("lambdakit")


def test_a_published_zip_is_trusted_by_size_and_time_and_rehashed_when_they_change(tmp_path):
    tree = tmp_path / "tree"
    (tree / "python").mkdir(parents=True)
    (tree / "python" / "m.py").write_text("X = 1\n")
    packaged = write_zip(tree, tmp_path / "l.zip")
    manifest = {"zip": {"sha256": packaged.zip_sha256, **zip_stamp(packaged.zip_path)}}
    assert zip_matches(manifest, packaged.zip_path)

    # Same bytes, new time (copied back, touched): the full hash settles it.
    os.utime(packaged.zip_path, ns=(1, 1))
    assert zip_matches(manifest, packaged.zip_path)
    # Other bytes: not the published layer any more.
    packaged.zip_path.write_bytes(packaged.zip_path.read_bytes() + b"\0")
    assert not zip_matches(manifest, packaged.zip_path)
    packaged.zip_path.unlink()
    assert not zip_matches(manifest, packaged.zip_path)
