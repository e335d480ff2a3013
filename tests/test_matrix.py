"""`build-layer --runtime LIST --arch LIST`: each target its own build, one table, the worst exit code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from held_builds import alive, descendants, silent_index

from builder import runtimes
from builder.cli.main import cli
from builder.matrix import parse_outcome, worst_exit

# Resolves from the package index (tests/conftest.py).
pytestmark = pytest.mark.network

LAMBDAKIT = [sys.executable, "-m", "builder"]


def _requirements(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def _matrix(tmp_path: Path, requirements: Path, runtimes: str, arches: str, *extra: str) -> tuple[int, dict]:
    argv = ["build-layer", "m", "-r", str(requirements), "--runtime", runtimes, "--arch", arches, "--backend",
            "uv", "--import-check", "interpreter", "--out", str(tmp_path / "out"), "--json",
            *extra]  # fmt: skip
    result = CliRunner().invoke(cli, argv)
    return result.exit_code, json.loads(result.output)


def test_each_target_is_built_into_its_own_folder_and_reported_in_order(tmp_path: Path) -> None:
    code, document = _matrix(
        tmp_path, _requirements(tmp_path, "psycopg2-binary==2.9.11"), "python3.11,python3.12", "x86_64"
    )
    assert code == 0, document
    assert document["ok"] is True
    rows = [(t["runtime"], t["arch"], t["verdict"]) for t in document["targets"]]
    assert rows == [("python3.11", "x86_64", "valid"), ("python3.12", "x86_64", "valid")]
    for row in document["targets"]:
        published = tmp_path / "out" / f"{row['runtime']}-x86_64" / "m"
        assert row["path"] == str(published)
        manifest = json.loads((published / "layer.json").read_text())
        assert (manifest["runtime"], manifest["arch"]) == (row["runtime"], "x86_64")
        assert row["zipped_bytes"] == manifest["sizes"]["zipped"] == (published / "m.zip").stat().st_size
        assert row["where"] == manifest["validation"]["imports"]["where"]
        assert row["where"].startswith("local interpreter ") and row["runtime"] in row["where"]


def test_the_table_names_every_target_and_the_exit_code_is_the_worst_verdict(tmp_path: Path) -> None:
    # aws-psycopg2: loads on python3.10, ships nothing python3.12 loads (invalid); arm64 cannot be
    # import-checked without Docker (not verified). Invalid is worse: exit 1.
    requirements = _requirements(tmp_path, "aws-psycopg2==1.3.8")
    argv = [*LAMBDAKIT, "build-layer", "m", "-r", str(requirements), "--runtime", "python3.10", "--runtime",
            "python3.12", "--arch", "all", "--backend", "uv", "--import-check", "interpreter",
            "--out", str(tmp_path / "out")]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    jobs = min(4, os.cpu_count() or 1)
    assert f"building m for 4 targets, {jobs} at a time" in result.stderr and "Traceback" not in result.stderr
    table = {tuple(line.split()[:3]) for line in result.stdout.splitlines()[1:-1]}
    assert table == {
        ("python3.10", "x86_64", "valid"),
        ("python3.10", "arm64", "not-verified"),
        ("python3.12", "x86_64", "invalid"),
        ("python3.12", "arm64", "invalid"),
    }
    assert result.stdout.splitlines()[-1] == "1 valid, 1 not-verified, 2 invalid of 4 targets"
    assert "no-compatible-binary" in result.stdout


def test_not_verified_is_exit_3_unless_allowed(tmp_path: Path) -> None:
    requirements = _requirements(tmp_path, "six==1.16.0")
    code, document = _matrix(tmp_path, requirements, "python3.12", "all")
    assert code == 3 and document["ok"] is False
    assert [t["verdict"] for t in document["targets"]] == ["valid", "not-verified"]
    assert (
        document["targets"][1]["where"]
        == "not verified: interpreter: this machine is x86_64, the layer is for arm64"
    )
    code, document = _matrix(tmp_path, requirements, "python3.12", "all", "--allow-unverified")
    assert code == 0 and document["ok"] is True


def test_a_matrix_refuses_an_export_and_a_bad_name_in_a_list(tmp_path: Path) -> None:
    requirements = _requirements(tmp_path, "six==1.16.0")
    code, document = _matrix(tmp_path, requirements, "all", "x86_64", "--export", str(tmp_path / "e"))
    assert code == 2 and "one target's layer, not a matrix's" in document["message"]
    assert not (tmp_path / "out").exists() and not (tmp_path / "e").exists()
    result = CliRunner().invoke(
        cli, ["build-layer", "-r", str(requirements), "--runtime", "python3.12,python2.7"]
    )
    assert result.exit_code == 2 and "'python2.7' is not one of python3.9" in result.output


@pytest.mark.parametrize(
    ("how", "code"),
    [("SIGTERM to lambdakit", 143), ("Ctrl-C: SIGINT to its process group", 130)],
)
def test_an_interrupt_stops_every_running_target_and_keeps_their_previous_layers(
    tmp_path: Path, how: str, code: int
) -> None:
    out = tmp_path / "out"
    requirements = _requirements(tmp_path, "six==1.16.0")
    argv = [*LAMBDAKIT, "build-layer", "m", "-r", str(requirements), "--runtime", "python3.11,python3.12",
            "--backend", "uv", "--import-check", "interpreter", "--out", str(out), "-q"]  # fmt: skip
    subprocess.run(argv, check=True, capture_output=True)
    before = {p: os.readlink(p) for p in out.glob("*/m")}
    assert len(before) == 2
    # Both rebuilds held at an index that accepts and never answers, then the interrupt.
    with silent_index() as (index, requirements_text):
        requirements.write_text(requirements_text)
        proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, start_new_session=True)
        connections = [index.accept()[0] for _ in range(2)]
        builds = descendants(proc.pid)
        assert builds
        if code == 143:
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        for connection in connections:
            connection.close()
    assert proc.returncode == code, stderr
    assert "every other keeps its previous layer" in stderr and "Traceback" not in stderr
    assert [pid for pid in builds if alive(pid)] == []
    assert {p: os.readlink(p) for p in out.glob("*/m")} == before
    assert not list(out.glob("*/.builds/.staging-*"))


def test_a_target_that_prints_no_result_is_an_error_and_an_error_outranks_invalid() -> None:
    t = runtimes.target("python3.12", "x86_64")
    crashed = parse_outcome(t, -11, "", "Segmentation fault\n", 1.0)
    assert (crashed.verdict, crashed.where) == ("error", "the build printed no result: Segmentation fault")
    invalid = parse_outcome(
        t, 1, json.dumps({"ok": False, "error": "ResolveError", "message": "no wheel"}), "", 1.0
    )
    assert (invalid.verdict, invalid.where) == ("invalid", "no wheel")
    # Any error the build exits 1 for is invalid, not only the classes named here.
    unpackable = parse_outcome(
        t, 1, json.dumps({"ok": False, "error": "UnpackableLayer", "message": "link"}), "", 1.0
    )
    assert unpackable.verdict == "invalid"
    usage = parse_outcome(t, 2, json.dumps({"ok": False, "error": "UsageError", "message": "bad"}), "", 1.0)
    assert usage.verdict == "error"
    assert worst_exit([invalid], allow_unverified=False) == 1
    assert worst_exit([invalid, crashed], allow_unverified=True) == 2
    assert worst_exit([], allow_unverified=False) == 0
