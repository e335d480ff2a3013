import pytest

from builder.errors import UsageError
from builder.requirements import read_requirements


def test_reads_names_extras_and_comments(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text("# layer\npsycopg[binary]==3.2.3  # v3\n\n--only-binary :all:\nnumpy<2.4\n")
    assert read_requirements(path).names == ["psycopg", "numpy"]


@pytest.mark.parametrize("line", ["psycopg2-binary===", "numpy >>> 2", "not a requirement!"])
def test_bad_requirement_names_file_line_and_text(tmp_path, line):
    path = tmp_path / "requirements.txt"
    path.write_text(f"click\n{line}\n")
    with pytest.raises(UsageError) as err:
        read_requirements(path)
    assert f"{path}:2" in err.value.message and line in err.value.message
    assert "psycopg2-binary==" in err.value.hint


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        read_requirements(tmp_path / "nope.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(UsageError, match="lists no requirements"):
        read_requirements(empty)


def test_unsupported_option(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text("-e git+https://example.invalid/x.git\n")
    with pytest.raises(UsageError, match="not supported"):
        read_requirements(path)
