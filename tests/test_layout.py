"""Which entries of sys.path directories Python finds, for the flattened views of function + layers."""

from __future__ import annotations

from pathlib import Path

from builder.layout import apply_shadowing, import_key


def _touch(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_import_keys_are_import_names_whatever_the_file_name(tmp_path: Path) -> None:
    for name in ("foo.py", "foo.cpython-312-x86_64-linux-gnu.so", "foo.abi3.so", "foo.so"):
        _touch(tmp_path / name)
        assert import_key(tmp_path / name) == "foo"
    (tmp_path / "foo").mkdir()
    assert import_key(tmp_path / "foo") == "foo"
    (tmp_path / "Foo_Bar-1.0.dist-info").mkdir()
    assert import_key(tmp_path / "Foo_Bar-1.0.dist-info") == "dist-info:foo-bar"
    _touch(tmp_path / "README.txt")
    assert import_key(tmp_path / "README.txt") == "README.txt"


def test_a_module_hides_a_later_package_and_a_package_a_later_module(tmp_path: Path) -> None:
    upper, lower = tmp_path / "task", tmp_path / "opt"
    _touch(upper / "foo.py")
    _touch(lower / "foo" / "__init__.py")
    _touch(upper / "bar" / "__init__.py")
    _touch(lower / "bar.cpython-312-x86_64-linux-gnu.so")
    _touch(lower / "baz.py")
    assert apply_shadowing(upper, lower) == set()
    assert sorted(p.name for p in lower.iterdir()) == ["baz.py"]


def test_a_namespace_portion_loses_to_a_later_regular_package_and_combines_with_a_later_portion(
    tmp_path: Path,
) -> None:
    upper, lower = tmp_path / "task", tmp_path / "opt"
    _touch(upper / "ns" / "mine.py")  # no __init__.py: a namespace portion
    _touch(lower / "ns" / "__init__.py")
    _touch(upper / "both" / "mine.py")
    _touch(lower / "both" / "theirs.py")
    _touch(lower / "both" / "mine.py", "the layer's")

    hidden = apply_shadowing(upper, lower)

    assert hidden == {upper / "ns"}  # Python imports the layer's regular ns: the function's is skipped
    assert (lower / "ns" / "__init__.py").is_file()
    assert (lower / "both" / "theirs.py").is_file()
    assert not (lower / "both" / "mine.py").exists()  # the function's both.mine comes first
