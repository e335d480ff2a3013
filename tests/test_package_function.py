"""`lambdakit package-function`: a plain function's folder and requirements -> one validated zip.

Real: uv resolving six from the package index, the slim/audit pipeline, and the import check in
this machine's CPython 3.12 (`--import-check interpreter`: no Docker needed). Each test runs the
installed command in its own folder, so the build cache (build/functions/.deps) is its own.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from audit.conftest import Compiler

from builder.host import host_arch

pytestmark = pytest.mark.network

LAMBDAKIT = Path(sys.executable).parent / "lambdakit"
TARGET = ("--runtime", "python3.12", "--arch", "x86_64")
HANDLER = "import six\n\n\ndef handler(event, context):\n    return {'six': six.__version__}\n"


def package(cwd: Path, *args: str) -> tuple[int, dict[str, Any]]:
    argv = [str(LAMBDAKIT), "package-function", *args, "--import-check", "interpreter", "--json"]
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)


def write_function(folder: Path, handler: str = HANDLER, requirements: str = "six==1.16.0\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "handler.py").write_text(handler)
    (folder / "requirements.txt").write_text(requirements)
    return folder


@pytest.fixture
def fn(tmp_path: Path) -> Path:
    """A function folder with what never belongs in its zip: bytecode, tests, a virtual environment."""
    folder = write_function(tmp_path / "fn")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "handler.cpython-312.pyc").write_bytes(b"\x00" * 16)
    (folder / "stale.pyc").write_bytes(b"\x00" * 16)
    (folder / "tests").mkdir()
    (folder / "tests" / "test_handler.py").write_text("def test_nothing():\n    pass\n")
    (folder / ".venv" / "lib").mkdir(parents=True)
    (folder / ".venv" / "lib" / "six.py").write_text("raise ImportError('the host venv leaked in')\n")
    return folder


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_zip_holds_the_code_and_its_requirements_at_its_root_and_is_deterministic(
    fn: Path, tmp_path: Path
) -> None:
    code, document = package(tmp_path, "fn", *TARGET, "--handler", "handler.handler")
    assert code == 0, document
    zip_path = tmp_path / "build" / "functions" / "fn-python3.12-x86_64.zip"
    assert (document["schema"], document["ok"], document["verdict"], document["written"]) == (
        1,
        True,
        "valid",
        True,
    )
    assert Path(document["path"]) == zip_path
    assert document["sha256"] == sha256(zip_path)
    assert document["sizes"]["zipped"] == zip_path.stat().st_size
    assert (document["dependencies"], document["packages"]) == ("built", {"six": "1.16.0"})
    assert document["left_out"] == [".venv/", "__pycache__/", "stale.pyc", "tests/"]
    # The handler was imported and looked up, in the interpreter of the runtime's version.
    assert (document["handler"]["spec"], document["handler"]["status"]) == ("handler.handler", "passed")
    assert document["handler"]["error"] is None
    assert "3.12" in document["handler"]["where"]
    assert document["validation"]["imports"]["modules"] == {
        "handler": None,
        "six": None,
        "handler:handler": None,
    }

    names = zipfile.ZipFile(zip_path).namelist()
    assert {"handler.py", "six.py", "requirements.txt"} <= set(names)
    assert not [
        n for n in names if "__pycache__" in n or n.endswith(".pyc") or n.startswith((".venv", "tests"))
    ]
    # Nothing of lambdakit's own output, though it sits in the working folder: only inside DIR counts.
    assert not [n for n in names if n.startswith("build/")]

    # Again, from the cache; then from nothing: the same bytes each time.
    code, again = package(tmp_path, "fn", *TARGET, "--handler", "handler.handler")
    assert (code, again["dependencies"], again["sha256"]) == (0, "up-to-date", document["sha256"])
    subprocess.run(["rm", "-rf", str(tmp_path / "build")], check=True)
    code, rebuilt = package(tmp_path, "fn", *TARGET, "--handler", "handler.handler")
    assert (code, rebuilt["dependencies"], rebuilt["sha256"]) == (0, "built", document["sha256"])


def test_packaging_the_working_folder_leaves_lambdakits_own_output_out(fn: Path) -> None:
    """`cd fn && lambdakit package-function .`: build/functions/ (with other targets' zips and the
    dependency cache) lands inside DIR, and must not be packaged into the next zip."""
    assert package(fn, ".", "--runtime", "python3.11", "--arch", "x86_64")[0] == 0
    code, document = package(fn, ".", *TARGET)
    assert code == 0, document
    names = zipfile.ZipFile(document["path"]).namelist()
    assert "handler.py" in names
    assert not [n for n in names if n.startswith("build")], names


def test_a_module_of_the_code_replaces_the_dependency_of_that_name_whole_and_says_so(tmp_path: Path) -> None:
    fn = write_function(tmp_path / "fn", handler="import six\n\ndef handler(e, c):\n    return six.OWN\n")
    (fn / "six").mkdir()
    (fn / "six" / "__init__.py").write_text("OWN = True\n")
    code, document = package(tmp_path, "fn", *TARGET, "--handler", "handler.handler")
    assert code == 0, document
    assert document["shadowed"] == ["six"]
    names = zipfile.ZipFile(document["path"]).namelist()
    # Both would land in /var/task: the function's package is kept, the requirement's module is not.
    assert "six/__init__.py" in names
    assert "six.py" not in names


def test_a_handler_in_a_subpackage_is_found_by_either_spelling(tmp_path: Path) -> None:
    fn = tmp_path / "fn"
    (fn / "app").mkdir(parents=True)
    (fn / "app" / "__init__.py").write_text("")
    (fn / "app" / "main.py").write_text("def lambda_handler(event, context):\n    return 1\n")
    for spec in ("app.main.lambda_handler", "app/main.lambda_handler"):
        code, document = package(tmp_path, "fn", *TARGET, "--handler", spec)
        assert code == 0, document
        assert (document["dependencies"], document["handler"]["status"]) == ("none", "passed")


def test_a_requirements_file_of_comments_only_means_no_dependencies(tmp_path: Path) -> None:
    write_function(tmp_path / "fn", handler="def handler(e, c):\n    return 1\n", requirements="# none yet\n")
    code, document = package(tmp_path, "fn", *TARGET, "--handler", "handler.handler")
    assert code == 0, document
    assert (document["dependencies"], document["requirements"], document["packages"]) == ("none", None, {})


# --- hostile input: a clear error, the contract's exit code, and a previous zip left as it was ------


@pytest.fixture
def previous(fn: Path, tmp_path: Path) -> Path:
    """A good zip already at --out, which a failed run must leave byte for byte."""
    out = tmp_path / "out" / "fn.zip"
    code, document = package(tmp_path, "fn", *TARGET, "--out", str(out))
    assert code == 0, document
    return out


@pytest.mark.parametrize(
    ("args", "exit_code", "error", "says"),
    [
        (["missing"], 2, "UsageError", "missing does not exist"),
        (["fn/handler.py"], 2, "UsageError", "is a file, not a folder"),
        (["fn", "--handler", "handler"], 2, "UsageError", "'handler' is not a Lambda handler"),
        (["fn", "--handler", "../up.handler"], 2, "UsageError", "is not a Lambda handler"),
        (["fn", "-r", "fn/nothing.txt"], 2, "UsageError", "does not exist"),
        (["unresolvable"], 1, "ResolveError", "nonexistent-package-xyz"),
        (["fn", "--handler", "handler.missing"], 1, "InvalidLayer", "no zip was written"),
        (["fn", "--handler", "nomodule.handler"], 1, "InvalidLayer", "no zip was written"),
    ],
)
def test_a_failed_run_says_why_and_leaves_the_previous_zip(
    previous: Path, tmp_path: Path, args: list[str], exit_code: int, error: str, says: str
) -> None:
    write_function(tmp_path / "unresolvable", requirements="nonexistent-package-xyz==1\n")
    before = previous.read_bytes()
    code, document = package(tmp_path, *args, *TARGET, "--out", str(previous))
    assert (code, document["ok"], document["error"]) == (exit_code, False, error), document
    assert says in document["message"]
    assert document["hint"]
    assert previous.read_bytes() == before
    # The run cleaned up after itself: nothing but the previous zip beside it.
    assert [p.name for p in previous.parent.iterdir()] == ["fn.zip"]


def test_a_missing_handler_function_is_named_with_pythons_own_error(previous: Path, tmp_path: Path) -> None:
    code, document = package(tmp_path, "fn", *TARGET, "--out", str(previous), "--handler", "handler.missing")
    assert code == 1
    [problem] = [p for p in document["validation"]["problems"] if p["path"] == "handler.missing"]
    assert problem["code"] == "handler-not-found"
    assert "has no attribute 'missing'" in problem["message"]


def test_code_carrying_an_extension_module_for_another_python_is_invalid_and_not_written(
    tmp_path: Path,
) -> None:
    """A copied binary the resolver never saw: built here with gcc, named for CPython 3.11."""
    fn = write_function(tmp_path / "fn", handler="def handler(e, c):\n    return 1\n", requirements="")
    Compiler(tmp_path / "work").library(
        fn / "fast.cpython-311-x86_64-linux-gnu.so", "int fast(void) { return 1; }"
    )
    code, document = package(tmp_path, "fn", *TARGET)
    assert (code, document["error"]) == (1, "InvalidLayer"), document
    problems = [(p["code"], p["path"]) for p in document["validation"]["problems"]]
    assert ("abi-mismatch", "python/fast.cpython-311-x86_64-linux-gnu.so") in problems, problems
    assert not (tmp_path / "build" / "functions" / "fn-python3.12-x86_64.zip").exists()


def test_a_symbolic_link_in_the_code_is_refused_by_name(tmp_path: Path) -> None:
    fn = write_function(tmp_path / "fn", requirements="")
    (fn / "config.json").symlink_to("/etc/hostname")
    code, document = package(tmp_path, "fn", *TARGET)
    assert (code, document["error"]) == (2, "UsageError"), document
    assert "config.json" in document["message"]
    assert not (tmp_path / "build" / "functions" / "fn-python3.12-x86_64.zip").exists()


def test_a_package_that_could_not_be_import_checked_is_written_only_when_allowed(
    fn: Path, tmp_path: Path
) -> None:
    """No interpreter of another architecture runs here: the import check cannot run (exit 3)."""
    other = "arm64" if host_arch() == "x86_64" else "x86_64"
    target = ("--runtime", "python3.12", "--arch", other)
    out = tmp_path / "build" / "functions" / f"fn-python3.12-{other}.zip"
    code, document = package(tmp_path, "fn", *target, "--handler", "handler.handler")
    assert (code, document["verdict"], document["written"], document["ok"]) == (
        3,
        "not-verified",
        False,
        False,
    )
    assert document["handler"]["status"] == "not-verified"
    assert not out.exists()
    code, document = package(tmp_path, "fn", *target, "--handler", "handler.handler", "--allow-unverified")
    assert (code, document["verdict"], document["written"]) == (0, "not-verified", True)
    assert sha256(out) == document["sha256"]
