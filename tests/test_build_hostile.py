"""build-layer against hostile names, neighbouring layers, killed builds and SIGTERM: never lose a layer."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from held_builds import alive, descendants, silent_index

from builder.cli.main import cli

# Resolves from the package index (tests/conftest.py).
pytestmark = pytest.mark.network

PSYCOPG2_BINARY = "psycopg2-binary==2.9.11"
LAMBDAKIT = [sys.executable, "-m", "builder"]


def _requirements(tmp_path: Path, line: str = PSYCOPG2_BINARY) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text(line + "\n")
    return path


def _build(name: str, requirements: Path, out: Path, *extra: str):
    argv = ["build-layer", name, "-r", str(requirements), "--out", str(out), "--import-check", "interpreter"]
    return CliRunner().invoke(cli, [*argv, *extra])


@pytest.mark.parametrize("name", ["../../victim", "a/b", "", ".", "..", "*", "x" * 65, "naïve"])
def test_a_name_that_is_not_a_name_is_refused_before_anything_touches_the_disk(tmp_path, name):
    (tmp_path / "victim.lock").write_text("keep me")
    out = tmp_path / "deep" / "a" / "b" / "out"
    result = _build(name, _requirements(tmp_path), out, "--json")
    assert result.exit_code == 2, result.output
    document = json.loads(result.output)
    assert "is not a layer name" in document["message"] and document["hint"]
    assert not (tmp_path / "deep").exists()
    assert (tmp_path / "victim.lock").read_text() == "keep me"


def test_publishing_one_layer_keeps_a_layer_whose_name_starts_the_same(tmp_path):
    out = tmp_path / "out"
    assert _build("pg-extra", _requirements(tmp_path, "six==1.16.0"), out).exit_code == 0
    extra_target = (out / "pg-extra").resolve()
    assert _build("pg", _requirements(tmp_path), out).exit_code == 0
    assert _build("pg", _requirements(tmp_path), out, "--force").exit_code == 0
    assert extra_target.is_dir() and (out / "pg-extra").resolve() == extra_target
    assert (out / "pg-extra" / "pg-extra.zip").is_file()


def test_an_abandoned_staging_folder_is_swept_and_another_layers_is_not(tmp_path):
    out = tmp_path / "out"
    builds = out / ".builds"
    mine = builds / ".staging-pg-0123456789ab-89abcdef" / "tree"
    theirs = builds / ".staging-pg-extra-0123456789ab-89abcdef" / "tree"
    for folder in (mine, theirs):
        folder.mkdir(parents=True)
        (folder / "big").write_bytes(b"\0" * 1024)
    assert _build("pg", _requirements(tmp_path), out).exit_code == 0
    assert not mine.parent.exists()
    assert theirs.is_dir()  # a build of pg-extra may be running: only its own build sweeps it


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_mid_build_keeps_the_previous_layer_and_stops_the_resolver(tmp_path, signum, code):
    out = tmp_path / "out"
    requirements = _requirements(tmp_path, "six==1.16.0")
    argv = [*LAMBDAKIT, "build-layer", "x", "-r", str(requirements), "--runtime", "python3.12",
            "--out", str(out), "--import-check", "interpreter", "-q"]  # fmt: skip
    subprocess.run(argv, check=True)
    published = out / "x"
    link, zip_bytes = os.readlink(published), (published / "x.zip").read_bytes()
    # The interruption point is fixed, not raced: an index on loopback that accepts and never
    # answers holds the rebuild inside its resolver until the signal comes.
    with silent_index() as (index, requirements_text):
        requirements.write_text(requirements_text)
        proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
        connection, _ = index.accept()
        with connection:
            assert list((out / ".builds").glob(".staging-*")), "the rebuild is mid-build: its staging exists"
            resolvers = descendants(proc.pid)
            assert resolvers, "the resolver is running when the signal comes"
            # Sent to lambdakit alone, not its process group: it must stop the resolver itself.
            proc.send_signal(signum)
            _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "previous layer is unchanged" in stderr and "Traceback" not in stderr
    assert [pid for pid in resolvers if alive(pid)] == []
    assert os.readlink(published) == link
    assert (published / "x.zip").read_bytes() == zip_bytes
    assert not list((out / ".builds").glob(".staging-*"))


def test_a_second_build_of_a_layer_waits_for_the_lock_before_it_touches_the_disk(tmp_path):
    out = tmp_path / "out"
    argv = [*LAMBDAKIT, "build-layer", "c", "-r", str(_requirements(tmp_path, "six==1.16.0")),
            "--out", str(out), "--import-check", "interpreter", "-q"]  # fmt: skip
    (out / ".builds").mkdir(parents=True)
    with (out / ".builds" / "c.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a running build of layer c holds it
        proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
        # The kernel lists a process blocked on a lock as a waiter ("->") in /proc/locks.
        deadline = time.monotonic() + 120
        while f" {proc.pid} " not in "".join(
            line for line in Path("/proc/locks").read_text().splitlines(keepends=True) if "->" in line
        ):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the second build never waited on the lock"
            time.sleep(0.02)
        assert not list((out / ".builds").glob(".staging-*")) and not (out / "c").exists()
        fcntl.flock(held, fcntl.LOCK_UN)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert (out / "c" / "c.zip").is_file()


def test_export_replaces_its_own_previous_export_whole(tmp_path):
    out, dest = tmp_path / "out", tmp_path / "artifacts"
    both = _requirements(tmp_path, "six==1.16.0\nidna==3.10")
    assert _build("deps", both, out, "--export", str(dest)).exit_code == 0
    assert (dest / "python" / "six.py").is_file() and (dest / "python" / "idna").is_dir()
    one = _requirements(tmp_path, "six==1.16.0")
    assert _build("deps", one, out, "--export", str(dest)).exit_code == 0
    assert (dest / "python" / "six.py").is_file()
    assert not (dest / "python" / "idna").exists()  # dropped from the requirements, gone from the export


def test_export_leaves_a_folder_it_did_not_make_as_it_is(tmp_path):
    dest = tmp_path / "mine"
    (dest / "python").mkdir(parents=True)
    (dest / "python" / "precious.py").write_text("keep\n")
    result = _build(
        "deps", _requirements(tmp_path, "six==1.16.0"), tmp_path / "out", "--export", str(dest), "--json"
    )
    assert result.exit_code == 2
    assert "not a previous export of lambdakit" in json.loads(result.output)["message"]
    assert sorted(p.name for p in (dest / "python").iterdir()) == ["precious.py"]


@pytest.mark.parametrize("where", ["out", "out/deps", "out/deps/tree", "out/.builds"])
def test_export_refuses_lambdakits_own_output(tmp_path, where):
    out = tmp_path / "out"
    requirements = _requirements(tmp_path, "six==1.16.0")
    assert _build("deps", requirements, out).exit_code == 0
    zip_before = (out / "deps" / "deps.zip").read_bytes()
    result = _build("deps", requirements, out, "--export", str(tmp_path / where), "--json")
    assert result.exit_code == 2 and "inside lambdakit's output" in json.loads(result.output)["message"]
    assert (out / "deps" / "deps.zip").read_bytes() == zip_before
    assert (out / "deps" / "tree" / "python" / "six.py").is_file()


def test_export_under_a_file_is_an_environment_error_not_a_traceback(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = _build(
        "deps", _requirements(tmp_path, "six==1.16.0"), tmp_path / "out", "--export", str(blocker / "x")
    )
    assert result.exit_code == 2 and "cannot export to" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("damage", ["delete", "add", "truncate"])
def test_a_damaged_published_tree_is_rebuilt_not_exported(tmp_path, damage):
    out, requirements = tmp_path / "out", _requirements(tmp_path, "six==1.16.0")
    assert _build("deps", requirements, out).exit_code == 0
    six = out / "deps" / "tree" / "python" / "six.py"
    # The layer's files are its own: damaging one must not reach the resolver's cache.
    assert six.stat().st_nlink == 1
    if damage == "delete":
        six.unlink()
    elif damage == "add":
        (six.parent / "stray.py").write_text("")
    else:
        six.write_text(six.read_text()[:100])
    result = _build("deps", requirements, out, "--json", "--export", str(tmp_path / "export"))
    assert result.exit_code == 0
    assert json.loads(result.output)["status"] == "built"
    exported = tmp_path / "export" / "python"
    assert (exported / "six.py").stat().st_size > 100 and not (exported / "stray.py").exists()


def test_validate_of_a_layer_folder_uses_its_own_projects_build_and_says_when_it_is_stale(
    tmp_path, monkeypatch
):
    project = tmp_path / "project"
    source = project / "layers" / "deps"
    source.mkdir(parents=True)
    (source / "requirements.txt").write_text("six==1.16.0\n")
    monkeypatch.chdir(project)
    assert _build("deps", source / "requirements.txt", project / "build" / "layers").exit_code == 0

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not the project: its build/ is still the one used
    argv = ["validate", str(source), "--runtime", "python3.12", "--import-check", "interpreter", "--json"]
    checked = CliRunner().invoke(cli, argv)
    assert checked.exit_code == 0, checked.output

    (source / "requirements.txt").write_text("six==1.16.0\nidna==3.10\n")
    stale = CliRunner().invoke(cli, argv)
    assert stale.exit_code == 2
    document = json.loads(stale.output)
    assert document["message"].startswith("stale: ") and "build-layer deps" in document["hint"]

    never = project / "layers" / "never"
    never.mkdir()
    (never / "requirements.txt").write_text("six\n")
    unbuilt = CliRunner().invoke(cli, ["validate", str(never), "--json"])
    assert unbuilt.exit_code == 2 and "has not been built yet" in json.loads(unbuilt.output)["message"]


@pytest.fixture
def small_disk(tmp_path):
    """A real filesystem of a few megabytes (tmpfs; needs root, as CI has), to run out of space on."""

    def mount(megabytes: int) -> Path:
        where = tmp_path / f"disk{megabytes}"
        where.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(where)],
                                capture_output=True, text=True, check=False)  # fmt: skip
        if result.returncode != 0:
            pytest.fail(f"this test needs root to mount a small tmpfs: {result.stderr.strip()}")
        mounted.append(where)
        return where

    mounted: list[Path] = []
    yield mount
    for where in mounted:
        subprocess.run(["umount", str(where)], check=False)


@pytest.mark.parametrize(("megabytes", "step"), [(3, "resolve"), (13, "package")])
def test_a_full_disk_is_an_environment_error_and_keeps_the_previous_layer(
    tmp_path, small_disk, megabytes, step
):
    out = small_disk(megabytes) / "out"
    assert _build("pg", _requirements(tmp_path, "six==1.16.0"), out).exit_code == 0
    zip_before = (out / "pg" / "pg.zip").read_bytes()
    result = _build("pg", _requirements(tmp_path, PSYCOPG2_BINARY), out, "--json")
    assert result.exit_code == 2, result.output
    document = json.loads(result.output)
    assert "No space left on device" in document["message"] and "disk space" in document["hint"]
    assert document["step"] in (step, "")
    assert (out / "pg" / "pg.zip").read_bytes() == zip_before
    assert not list((out / ".builds").glob(".staging-*"))


def test_click_usage_errors_are_one_json_document_with_exit_2():
    result = subprocess.run([*LAMBDAKIT, "build-layer", "--runtime", "python2.7", "--json"],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 2
    document = json.loads(result.stdout)
    assert document["ok"] is False and "python2.7" in document["message"]


def test_out_under_a_file_is_an_environment_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = _build("deps", _requirements(tmp_path, "six==1.16.0"), blocker / "out", "--json")
    assert result.exit_code == 2 and "Not a directory" in json.loads(result.output)["message"]


def test_a_read_only_out_or_export_is_an_environment_error(tmp_path, small_disk):
    disk = small_disk(1)
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    six = _requirements(tmp_path, "six==1.16.0")
    refused = _build("deps", six, disk / "out", "--json")
    assert refused.exit_code == 2 and "Read-only file system" in json.loads(refused.output)["message"]
    out = tmp_path / "out"
    exported = _build("deps", six, out, "--export", str(disk / "export"), "--json")
    assert exported.exit_code == 2 and "Read-only file system" in json.loads(exported.output)["message"]
    assert (out / "deps" / "deps.zip").is_file()  # the layer itself was published before the export


def test_a_layer_that_could_not_be_import_checked_is_exported_only_when_allowed(tmp_path):
    # arm64 on this x86_64 machine kind without Docker: built and audited, never imported.
    requirements = _requirements(tmp_path, "six==1.16.0")
    argv = ["build-layer", "arm", "-r", str(requirements), "--arch", "arm64", "--backend", "uv",
            "--out", str(tmp_path / "out"), "--import-check", "interpreter"]  # fmt: skip
    export = tmp_path / "artifacts"
    strict = CliRunner().invoke(cli, [*argv, "--export", str(export)])
    assert strict.exit_code == 3, strict.output
    assert "not exported" in strict.output and not export.exists()
    allowed = CliRunner().invoke(cli, [*argv, "--export", str(export), "--allow-unverified"])
    assert allowed.exit_code == 0, allowed.output
    assert sorted(p.name for p in (export / "python").iterdir()) == ["six-1.16.0.dist-info", "six.py"]
