"""Resolution for the target, not this host: markers, the requirements-file syntax, complete dependencies.

Real downloads through uv and pip, real wheels, real interpreters. The host is
CPython 3.11 on x86_64 Linux; the targets here differ from it in Python version
or architecture, so a marker evaluated for the host gives a different layer.
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from builder import runtimes
from builder.build import BuildOptions, build_layer
from builder.cli.main import cli
from builder.errors import EnvironmentProblem, InvalidLayer, ResolveError, UsageError
from builder.progress import Silent

# Resolves from the package index (tests/conftest.py).
pytestmark = pytest.mark.network

MARKERS = """\
anyio==4.6.0
six==1.16.0 ; platform_machine == "aarch64"
idna ; sys_platform == "linux"
colorama ; sys_platform == "win32"
tomli==2.0.1 ; python_version < "3.11"
"""


def _file(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _build(tmp_path: Path, requirements: Path, runtime: str, arch: str = "x86_64", backend: str = "uv"):
    options = BuildOptions(
        name="layer",
        requirements=requirements,
        target=runtimes.target(runtime, arch),
        out=tmp_path / "out",
        backend=backend,  # type: ignore[arg-type]
        import_check="interpreter",
    )
    return build_layer(options, Silent())


@pytest.mark.parametrize(
    ("runtime", "arch", "expected", "absent"),
    [
        # python3.10: markers on python_version hold, on the file and in anyio's own dependencies.
        ("python3.10", "x86_64", {"exceptiongroup", "typing-extensions", "tomli", "idna"}, {"six"}),
        # arm64: platform_machine is aarch64; python_version < "3.11" does not hold on 3.12.
        ("python3.12", "arm64", {"six", "idna"}, {"exceptiongroup", "tomli"}),
    ],
)
def test_markers_are_evaluated_for_the_target(tmp_path, runtime, arch, expected, absent):
    result = _build(tmp_path, _file(tmp_path / "requirements.txt", MARKERS), runtime, arch)
    packages = set(result.manifest.packages)
    assert expected <= packages, packages
    assert not (absent | {"colorama"}) & packages, packages  # sys_platform is linux, never win32
    assert result.manifest.validation is not None
    assert not [p for p in result.manifest.validation.problems if p.code == "missing-dependency"]


def test_pip_with_host_markers_drops_a_dependency_and_the_audit_says_so(tmp_path):
    """pip evaluates `exceptiongroup; python_version < "3.11"` (anyio's) for this 3.11 host."""
    if sys.version_info[:2] != (3, 11):
        pytest.fail("this test needs a Python 3.11 host, where the marker is false for the host only")
    with pytest.raises(InvalidLayer) as err:
        _build(tmp_path, _file(tmp_path / "requirements.txt", "anyio==4.6.0\n"), "python3.10", backend="pip")
    problems = [p for p in err.value.report["problems"] if p["code"] == "missing-dependency"]
    messages = " | ".join(p["message"] for p in problems)
    assert 'anyio 4.6.0 requires exceptiongroup>=1.0.2 when python_version < "3.11"' in messages
    assert all(
        p["severity"] == "error" and p["path"].startswith("python/anyio-4.6.0.dist-info") for p in problems
    )
    assert not (tmp_path / "out" / "layer").exists()


def _wheel_sha256(tmp_path: Path, requirement: str) -> str:
    dest = tmp_path / "downloads"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", requirement,
         "-d", str(dest)],
        check=True,
    )  # fmt: skip
    (wheel,) = dest.glob("*.whl")
    return hashlib.sha256(wheel.read_bytes()).hexdigest()


def test_a_hash_pinned_file_builds_and_a_wrong_hash_fails_naming_the_package(tmp_path):
    good = _wheel_sha256(tmp_path, "six==1.16.0")
    pinned = _file(
        tmp_path / "requirements.txt",
        f"# pip-compile --generate-hashes style\nsix==1.16.0 \\\n    --hash=sha256:{good}\n",
    )
    assert _build(tmp_path, pinned, "python3.12").manifest.packages == {"six": "1.16.0"}

    wrong = _file(tmp_path / "wrong" / "requirements.txt", f"six==1.16.0 --hash=sha256:{'0' * 64}\n")
    runner = CliRunner().invoke(
        cli, ["build-layer", "h", "-r", str(wrong), "--out", str(tmp_path / "o2"), "--json", "--force"]
    )
    assert runner.exit_code == 1, runner.output
    document = json.loads(runner.output)
    assert document["step"] == "resolve" and "hash mismatch for six==1.16.0" in document["message"]
    assert not (tmp_path / "o2" / "h").exists()


def test_includes_and_constraints_relative_to_the_including_file(tmp_path):
    top = _file(tmp_path / "app" / "requirements.txt", "-r ../shared/base.txt\n-c pins.txt\nidna\t# tab\n")
    _file(tmp_path / "shared" / "base.txt", "six\n")
    _file(tmp_path / "app" / "pins.txt", "six==1.16.0\nidna==3.10\n")
    result = _build(tmp_path, top, "python3.12")
    assert result.manifest.packages == {"idna": "3.10", "six": "1.16.0"}
    # A change in an included file is a change of the layer's inputs.
    _file(tmp_path / "app" / "pins.txt", "six==1.17.0\nidna==3.10\n")
    again = _build(tmp_path, top, "python3.12")
    assert again.status == "built" and again.manifest.packages["six"] == "1.17.0"


def test_a_pylock_file_installs_what_it_locks(tmp_path):
    digest = _wheel_sha256(tmp_path, "six==1.16.0")
    lock = _file(
        tmp_path / "downloads" / "pylock.toml",
        'lock-version = "1.0"\ncreated-by = "lambdakit-test"\n\n'
        '[[packages]]\nname = "six"\nversion = "1.16.0"\n\n'
        '[[packages.wheels]]\nname = "six-1.16.0-py2.py3-none-any.whl"\n'
        f'path = "six-1.16.0-py2.py3-none-any.whl"\nhashes = {{sha256 = "{digest}"}}\n',
    )
    assert _build(tmp_path, lock, "python3.12").manifest.packages == {"six": "1.16.0"}
    with pytest.raises(UsageError, match="pip does not install from"):
        _build(tmp_path, lock, "python3.12", backend="pip")


@pytest.mark.parametrize("backend", ["uv", "pip"])
def test_a_source_build_option_is_refused_by_the_wheels_only_backends(tmp_path, backend):
    requirements = _file(tmp_path / "requirements.txt", "--no-binary six\nsix==1.16.0\n")
    with pytest.raises(UsageError, match="--no-binary") as err:
        _build(tmp_path, requirements, "python3.12", backend=backend)
    assert "--backend docker" in err.value.hint


def test_an_unreachable_index_is_an_environment_problem_not_a_missing_package(tmp_path):
    requirements = _file(
        tmp_path / "requirements.txt", "--index-url http://127.0.0.1:9/simple\nsix-that-is-not-cached==1.0\n"
    )
    with pytest.raises(EnvironmentProblem, match="could not be reached") as err:
        _build(tmp_path, requirements, "python3.12")
    assert err.value.exit_code == 2
    with pytest.raises(ResolveError):  # while a package that does not exist is the input's fault
        _build(tmp_path, _file(tmp_path / "r2.txt", "numpy==2.3.5\n"), "python3.11")


# --- missing-dependency, on trees the test writes --------------------------------------------------


def _distribution(site: Path, name: str, version: str, *requires: str, module: str | None = None) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    (site / f"{module or name}.py").write_text("VALUE = 1\n")  # imports without its dependencies


def _validate(*args: str) -> tuple[int, dict]:
    argv = ["validate", *args, "--runtime", "python3.12", "--json", "--import-check", "interpreter"]
    result = CliRunner().invoke(cli, argv)
    return result.exit_code, json.loads(result.output)


def test_a_layer_missing_a_required_distribution_and_the_function_view_that_settles_it(tmp_path):
    layer = tmp_path / "layer"
    _distribution(layer / "python", "app", "1.0", "helper>=2", 'winonly; sys_platform == "win32"')
    # Alone, the layer may lean on what the function provides: reported, as a warning.
    code, report = _validate(str(layer))
    problems = [p for p in report["problems"] if p["code"] == "missing-dependency"]
    assert code == 0 and report["verdict"] == "valid"
    assert [(p["severity"], p["path"]) for p in problems] == [("warning", "python/app-1.0.dist-info")]
    assert "app 1.0 requires helper>=2; helper is not present" in problems[0]["message"]
    assert "--function --layer" in problems[0]["hint"]

    function = tmp_path / "function"
    function.mkdir()
    (function / "handler.py").write_text("import app\n")
    # The function view is all there is: missing is an error.
    code, report = _validate(str(function), "--function", "--layer", str(layer))
    assert code == 1 and "missing-dependency" in {p["code"] for p in report["problems"]}

    # The function provides it, at a version that fits: nothing to report.
    _distribution(function, "helper", "2.1")
    code, report = _validate(str(function), "--function", "--layer", str(layer))
    assert (code, report["problems"]) == (0, [])

    # At a version that does not fit: named with both versions.
    (function / "helper-2.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: helper\nVersion: 1.5\n"
    )
    code, report = _validate(str(function), "--function", "--layer", str(layer))
    (problem,) = report["problems"]
    assert code == 1 and "helper 1.5 is present, which does not satisfy it" in problem["message"]


def test_a_distribution_deleted_from_a_built_layer_is_found(tmp_path):
    built = _build(tmp_path, _file(tmp_path / "requirements.txt", MARKERS), "python3.10")
    tree = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(built.tree), str(tree)], check=True)
    for path in (tree / "python").glob("typing_extensions*"):
        subprocess.run(["rm", "-rf", str(path)], check=True)
    result = CliRunner().invoke(
        cli, ["validate", str(tree), "--runtime", "python3.10", "--json", "--import-check", "interpreter"]
    )
    report = json.loads(result.output)
    missing = [p for p in report["problems"] if p["code"] == "missing-dependency"]
    assert {p["path"].split("/")[1].split("-")[0] for p in missing} >= {"anyio", "exceptiongroup"}
    assert all("typing-extensions" in p["message"] for p in missing)


def test_a_function_whose_requirement_its_layer_provides(tmp_path):
    function = tmp_path / "function"
    _distribution(function, "handler-app", "1.0", "six>=1.16", module="handler_app")
    alone_code, alone = _validate(str(function), "--function")
    assert alone_code == 1
    assert [p["code"] for p in alone["problems"]] == ["missing-dependency"]

    layer = tmp_path / "layer"
    _distribution(layer / "python", "six", "1.16.0")
    code, report = _validate(str(function), "--function", "--layer", str(layer))
    assert (code, report["problems"]) == (0, [])


def test_a_silent_index_ends_the_build_at_the_overall_timeout(tmp_path, monkeypatch):
    """An index on loopback that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    monkeypatch.setattr("builder.backends.RESOLVE_TIMEOUT_S", 3)
    requirements = _file(
        tmp_path / "requirements.txt", f"--index-url http://127.0.0.1:{port}/simple\nnothing-cached==9\n"
    )
    started = time.monotonic()
    try:
        with pytest.raises(EnvironmentProblem, match="did not finish in 3s") as err:
            _build(tmp_path, requirements, "python3.12")
    finally:
        listener.close()
    assert err.value.exit_code == 2
    assert time.monotonic() - started < 60
    assert not list((tmp_path / "out" / ".builds").glob(".staging-*"))
