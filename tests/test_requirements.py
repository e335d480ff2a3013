"""Reading a requirements file for the cache key, names and options; the resolver parses it for real."""

import pytest

from builder.backends import requirement_names
from builder.errors import UsageError
from builder.requirements import read_requirements


def _write(path, text: str | bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_names_from_lines_with_extras_comments_tabs_hashes_and_continuations(tmp_path):
    path = _write(
        tmp_path / "requirements.txt",
        "# layer\n"
        "psycopg[binary]==3.2.3\t# v3, after a tab\n"
        "\n"
        "--only-binary :all:\n"
        "numpy<2.4 \\\n"
        "    --hash=sha256:aaaa \\\n"
        "    --hash=sha256:bbbb\n"
        "pkg @ https://example.invalid/pkg-1.0-py3-none-any.whl\n",
    )
    found = read_requirements(path)
    assert requirement_names(found) == ["psycopg", "numpy", "pkg"]
    assert found.options == ("--only-binary",)


def test_includes_are_read_relative_to_the_including_file_and_go_into_the_text(tmp_path):
    top = _write(tmp_path / "app" / "requirements.txt", "-r ../shared/base.txt\n-c constraints.txt\nclick\n")
    _write(tmp_path / "shared" / "base.txt", "six==1.16.0\n")
    _write(tmp_path / "app" / "constraints.txt", "click<9\n")
    found = read_requirements(top)
    assert requirement_names(found) == ["six", "click"]  # a constraint asks for nothing
    assert [path.name for path, _ in found.included] == ["base.txt", "constraints.txt"]
    assert "six==1.16.0" in found.key_text and "click<9" in found.key_text


def test_an_include_that_does_not_exist_names_where_it_was_looked_for(tmp_path):
    top = _write(tmp_path / "requirements.txt", "--requirement=missing.txt\n")
    with pytest.raises(UsageError, match=r"includes missing.txt, which does not exist"):
        read_requirements(top)


def test_an_include_cycle_ends(tmp_path):
    _write(tmp_path / "a.txt", "-r b.txt\nsix\n")
    _write(tmp_path / "b.txt", "-r a.txt\nidna\n")
    assert requirement_names(read_requirements(tmp_path / "a.txt")) == ["idna", "six"]


def test_a_byte_order_mark_is_accepted_and_non_utf8_is_refused_with_its_line(tmp_path):
    assert read_requirements(_write(tmp_path / "bom.txt", b"\xef\xbb\xbfsix\n")).requirements == ("six",)
    with pytest.raises(UsageError, match=r"latin.txt:2: byte 0xe9 is not UTF-8"):
        read_requirements(_write(tmp_path / "latin.txt", b"six\ncaf\xe9\n"))


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        read_requirements(tmp_path / "nope.txt")
    with pytest.raises(UsageError, match="lists no requirements"):
        read_requirements(_write(tmp_path / "empty.txt", "# nothing\n--index-url https://example.invalid\n"))
    _write(tmp_path / "pins.txt", "six==1.16.0\n")
    with pytest.raises(UsageError, match="lists no requirements"):  # constraints ask for nothing
        read_requirements(_write(tmp_path / "only-constraints.txt", "-c pins.txt\n"))


def test_a_pylock_file_gives_its_package_names(tmp_path):
    lock = _write(
        tmp_path / "pylock.toml",
        'lock-version = "1.0"\ncreated-by = "test"\n[[packages]]\nname = "six"\nversion = "1.16.0"\n',
    )
    found = read_requirements(lock)
    assert (found.requirements, found.is_lock) == (("six==1.16.0",), True)
    with pytest.raises(UsageError, match="locks no packages"):
        read_requirements(_write(tmp_path / "x" / "pylock.toml", 'lock-version = "1.0"\n'))
