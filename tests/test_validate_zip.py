"""validate on crafted layer zips: each is refused as invalid with its reason, nothing written outside.

Every zip is made here by the test (no binary committed). These are the
archives a hostile or broken build produces: members twice, encrypted
members, a damaged deflate stream, a bomb, links and paths leading out, an
empty archive.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
import time
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from builder.cli.main import cli
from builder.validate import extract_layer_zip, function_tree

MODULE = "python/mod.py"


def _validate(path: Path) -> tuple[int, dict]:
    argv = ["validate", str(path), "--runtime", "python3.12", "--json", "--import-check", "interpreter"]
    result = CliRunner().invoke(cli, argv)
    assert "Traceback" not in result.output
    return result.exit_code, json.loads(result.output)


def _codes(report: dict) -> list[tuple[str, str]]:
    return [(p["code"], p["path"]) for p in report["problems"]]


def test_a_sound_zip_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "ok.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(MODULE, "X = 1\n")
    assert _validate(path)[0] == 0


@pytest.mark.filterwarnings("ignore:Duplicate name")  # zipfile warns while the test makes the zip
def test_a_member_twice(tmp_path: Path) -> None:
    path = tmp_path / "twice.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(MODULE, "X = 1\n")
        archive.writestr(MODULE, "X = 2\n")
    code, report = _validate(path)
    assert code == 1 and ("bad-archive", MODULE) in _codes(report)
    assert "twice" in report["problems"][0]["message"]


def test_an_encrypted_member(tmp_path: Path) -> None:
    path = tmp_path / "encrypted.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(MODULE, "X = 1\n")
    # Mark the member encrypted (general purpose flag bit 0), in its local header and in the
    # central directory, as a password-protected zip's members are.
    data = bytearray(path.read_bytes())
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        data[data.index(signature) + flag_offset] |= 0x1
    path.write_bytes(bytes(data))
    code, report = _validate(path)
    assert code == 1 and ("bad-archive", MODULE) in _codes(report)


def test_a_damaged_deflate_stream(tmp_path: Path) -> None:
    path = tmp_path / "damaged.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MODULE, "X = 1\n" * 2000)
    data = bytearray(path.read_bytes())
    start = data.index(b"mod.py") + len("mod.py")  # the member's data follows its local header
    for offset in range(start + 10, start + 40):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    code, report = _validate(path)
    assert code == 1 and [c for c, _ in _codes(report)] == ["bad-archive"]
    assert report["imports"]["status"] == "not-verified"  # nothing was left to import


def test_a_zip_bomb_is_refused_from_its_directory_without_unpacking(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    zeros = b"\0" * (1 << 20)
    info = zipfile.ZipInfo("python/zeros.bin")
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "w") as archive, archive.open(info, "w") as member:
        for _ in range(300):  # 300 MB of zeros, a few hundred KB zipped
            member.write(zeros)
    assert path.stat().st_size < 2_000_000
    started = time.monotonic()
    code, report = _validate(path)
    assert code == 1
    (problem,) = report["problems"]
    assert problem["code"] == "size-limit" and "it was not unpacked" in problem["message"]
    assert time.monotonic() - started < 30  # far less than unpacking 300 MB would take; a generous bound


def test_paths_and_links_leading_outside(tmp_path: Path) -> None:
    for member, link in [("../../escaped.py", None), ("python/evil.py", "../../../../etc/passwd")]:
        path = tmp_path / "out.zip"
        with zipfile.ZipFile(path, "w") as archive:
            info = zipfile.ZipInfo(member)
            if link is not None:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, link or "X = 1\n")
        code, report = _validate(path)
        assert code == 1 and ("bad-archive", member) in _codes(report), report
    assert not (tmp_path.parent / "escaped.py").exists()


def test_a_link_inside_the_layer_stays_a_link(tmp_path: Path) -> None:
    """Lambda keeps links: a soname link turned into a text file would be a false missing-library."""
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(MODULE, "X = 1\n")
        info = zipfile.ZipInfo("python/alias.py")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "mod.py")
    code, report = _validate(path)
    assert code == 0, report
    assert set(report["imports"]["modules"]) == {"alias", "mod"}


def test_an_empty_zip_is_invalid_not_unverified(tmp_path: Path) -> None:
    path = tmp_path / "empty.zip"
    zipfile.ZipFile(path, "w").close()
    code, report = _validate(path)
    assert code == 1 and _codes(report) == [("bad-layout", ".")]


# --- function packages with links, special files, a module that hangs ------------------------------


def _validate_function(package: Path) -> tuple[int, dict]:
    argv = ["validate", str(package), "--function", "--runtime", "python3.12", "--json", "--import-check",
            "interpreter"]  # fmt: skip
    result = CliRunner().invoke(cli, argv)
    assert "Traceback" not in result.output
    return result.exit_code, json.loads(result.output)


def test_a_link_to_a_device_is_not_followed(tmp_path: Path) -> None:
    package = tmp_path / "function"
    package.mkdir()
    (package / "handler.py").write_text("X = 1\n")
    (package / "data.bin").symlink_to("/dev/zero")
    started = time.monotonic()
    code, report = _validate_function(package)
    assert time.monotonic() - started < 30  # copying /dev/zero would never end; a generous bound
    assert code == 1 and ("escaping-link", "python/data.bin") in _codes(report)
    assert report["imports"]["reason"] == "not run: links lead outside the layer"


def test_a_link_loop_and_a_fifo(tmp_path: Path) -> None:
    package = tmp_path / "function"
    package.mkdir()
    (package / "handler.py").write_text("X = 1\n")
    (package / "a").symlink_to("b")
    (package / "b").symlink_to("a")
    os.mkfifo(package / "pipe")
    code, report = _validate_function(package)
    assert code == 1
    assert {
        ("escaping-link", "python/a"),
        ("escaping-link", "python/b"),
        ("bad-layout", "python/pipe"),
    } <= set(_codes(report))


def test_a_module_that_hangs_on_import_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("builder.verify.result.IMPORT_TIMEOUT_S", 3)
    layer = tmp_path / "layer" / "python"
    layer.mkdir(parents=True)
    (layer / "fine.py").write_text("X = 1\n")
    (layer / "stuck.py").write_text("import time\nwhile True:\n    time.sleep(1)\n")
    code, report = _validate(layer.parent)
    assert code == 1
    assert report["imports"]["modules"]["fine"] is None
    assert report["imports"]["modules"]["stuck"] == "TimeoutError: importing stuck did not finish in 3s"


def test_a_file_and_a_folder_of_one_name_and_a_name_too_long(tmp_path: Path) -> None:
    for members in (["python/x", "python/x/y.py"], ["python/" + "n" * 300 + ".py"]):
        path = tmp_path / "odd.zip"
        with zipfile.ZipFile(path, "w") as archive:
            for member in members:
                archive.writestr(member, "X = 1\n")
        code, report = _validate(path)
        assert code == 1 and [c for c, _ in _codes(report)] == ["bad-archive"], report


def _link(archive: zipfile.ZipFile, name: str, target: str) -> None:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive.writestr(info, target)


def test_a_chain_of_links_harmless_one_by_one_writes_nothing_outside(tmp_path: Path) -> None:
    """python/esc -> b/b/c/../../.. is inside while b and c do not exist; python/b -> . makes it lead
    out. Files are written before any link, and every link is judged once all exist."""
    dest = tmp_path / "a" / "b" / "dest"
    dest.mkdir(parents=True)
    zip_path = tmp_path / "chain.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        _link(archive, "python/esc", "b/b/c/../../..")
        _link(archive, "python/b", ".")
        archive.writestr("python/c/keep.txt", "x")
    problems = extract_layer_zip(zip_path, dest)
    assert [(p.code, p.path) for p in problems] == [("bad-archive", "python/esc")]
    assert list(dest.iterdir()) == []

    with zipfile.ZipFile(zip_path, "w") as archive:
        _link(archive, "python/esc", "b/b/c/../../..")
        _link(archive, "python/b", ".")
        archive.writestr("python/c/keep.txt", "x")
        archive.writestr("python/esc/PWNED.txt", "owned")
    assert extract_layer_zip(zip_path, dest)[0].code == "bad-archive"
    assert not list(tmp_path.rglob("PWNED.txt"))


def test_links_that_lead_out_only_once_layers_meet_are_removed_before_use(tmp_path: Path) -> None:
    layers = []
    for name, write in (
        ("l1", lambda a: (_link(a, "python/d", "sub/../.."), a.writestr("python/ok.py", ""))),
        ("l2", lambda a: _link(a, "python/sub", ".")),
        ("l3", lambda a: a.writestr("python/d/CROSS.txt", "owned")),
    ):
        with zipfile.ZipFile(tmp_path / f"{name}.zip", "w") as archive:
            write(archive)
        layers.append(tmp_path / f"{name}.zip")
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "app.py").write_text("")
    with function_tree(package, layers) as source:
        assert [(p.code, p.path) for p in source.problems] == [("escaping-link", "python/d")]
        assert (source.tree / "python" / "d" / "CROSS.txt").is_file()  # l3's own folder, inside
    assert not list(Path(tempfile.gettempdir()).glob("CROSS.txt"))
    assert not (tmp_path / "CROSS.txt").exists()


def test_a_module_that_is_a_file_in_one_layer_and_a_package_in_another_is_a_problem(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as archive:
        archive.writestr("python/foo", "x = 1\n")
    with zipfile.ZipFile(tmp_path / "b.zip", "w") as archive:
        archive.writestr("python/foo/__init__.py", "")
    package = tmp_path / "pkg"
    package.mkdir()
    for order in (["a.zip", "b.zip"], ["b.zip", "a.zip"]):
        with function_tree(package, [tmp_path / name for name in order]) as source:
            [problem] = source.problems
            assert (problem.code, problem.path) == ("bad-layout", ".")
            assert problem.message.startswith(f"{order[1]} cannot be laid over the layers before it")
            assert "python/foo" in problem.message and str(source.tree) not in problem.message
