"""The local-interpreter import check is isolated: only the layer and the standard library import.

README, "validate": without the runtime image, every top-level module is imported in a
local CPython of the runtime's version, isolated with `-I -S`, so that sys.path is the
layer plus the standard library. A layer that leans on something this machine happens
to have (the interpreter's site-packages, PYTHONPATH, the user site, the current
directory) must fail here as it would fail on Lambda. Each test first shows that the
host really offers that module to an interpreter run without isolation, so a pass is the
isolation's doing, not a module that was never there; the control shows that the same
layer passes once it ships those modules itself.
"""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from builder.cli.main import cli
from builder.host import find_interpreter, host_arch
from builder.runtimes import target

# The runtimes pyenv's CPython builds cover on this machine kind (as in tests/test_build.py).
LOCAL_RUNTIMES = [f"python3.{minor}" for minor in range(9, 14)]

# Layer module -> the module only the host provides, and where the host provides it.
# pip: the interpreter's own site-packages (-S leaves it out). hostonly: PYTHONPATH, and
# useronly: the user site (PYTHONUSERBASE), both set in this process's environment (the
# check passes the interpreter a minimal environment, and -I ignores PYTHON* and the user
# site anyway). cwdonly: the directory lambdakit runs in (the check runs in a scratch folder,
# and -I leaves '' out of sys.path).
HOST_ONLY = {
    "uses_pip": "pip",
    "uses_pythonpath": "hostonly",
    "uses_user_site": "useronly",
    "uses_cwd": "cwdonly",
}


def _interpreter(runtime: str) -> Path:
    if host_arch() != "x86_64":
        pytest.fail("LOCAL_RUNTIMES describes x86_64 machines; write this machine's down")
    interpreter = find_interpreter(target(runtime, "x86_64").version)
    if interpreter is None:
        pytest.fail(f"no local interpreter for {runtime}: these tests need pyenv's CPython builds")
    return interpreter


def _validate(layer: Path, runtime: str) -> tuple[int, dict]:
    argv = ["validate", str(layer), "--runtime", runtime, "--arch", "x86_64",
            "--import-check", "interpreter", "--json"]  # fmt: skip
    result = CliRunner().invoke(cli, argv)
    assert "Traceback" not in result.output
    return result.exit_code, json.loads(result.output)


def _layer_using_host_modules(root: Path) -> Path:
    """A layer whose modules each import one module that only the host provides."""
    python = root / "python"
    python.mkdir(parents=True)
    for module, needed in HOST_ONLY.items():
        (python / f"{module}.py").write_text(f"import {needed}\n")
    return root


@pytest.fixture
def host_offers_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Puts hostonly on PYTHONPATH, useronly in the user site and cwdonly in the current directory.

    Returns the directory that is the current directory now.
    """
    pythonpath = tmp_path / "host" / "pythonpath"
    pythonpath.mkdir(parents=True)
    (pythonpath / "hostonly.py").write_text("")
    userbase = tmp_path / "host" / "userbase"
    monkeypatch.setenv("PYTHONPATH", str(pythonpath))
    monkeypatch.setenv("PYTHONUSERBASE", str(userbase))
    for minor in range(9, 14):  # the user site is per version: one for each runtime tested
        site = userbase / "lib" / f"python3.{minor}" / "site-packages"
        site.mkdir(parents=True)
        (site / "useronly.py").write_text("")
    cwd = tmp_path / "host" / "cwd"
    cwd.mkdir()
    (cwd / "cwdonly.py").write_text("")
    monkeypatch.chdir(cwd)
    return cwd


def _assert_host_offers_them(interpreter: Path, cwd: Path) -> None:
    """Without isolation, in this process's environment, the interpreter imports every host module."""
    modules = ", ".join(HOST_ONLY.values())
    plain = subprocess.run(
        [str(interpreter), "-c", f"import {modules}"], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert plain.returncode == 0, plain.stderr


@pytest.mark.parametrize("runtime", LOCAL_RUNTIMES)
def test_modules_only_the_host_provides_fail_to_import_as_import_failed(
    tmp_path: Path, runtime: str, host_offers_modules: Path
) -> None:
    interpreter = _interpreter(runtime)
    _assert_host_offers_them(interpreter, host_offers_modules)
    code, report = _validate(_layer_using_host_modules(tmp_path / "layer"), runtime)
    where = f"local interpreter {interpreter}"
    errors = {
        module: f"ModuleNotFoundError: No module named '{needed}'" for module, needed in HOST_ONLY.items()
    }
    assert code == 1
    assert report["verdict"] == "invalid"
    assert report["imports"]["status"] == "failed"
    assert report["imports"]["where"] == where
    assert report["imports"]["modules"] == errors
    assert sorted((p["code"], p["path"], p["message"], p["severity"]) for p in report["problems"]) == sorted(
        ("import-failed", module, f"import {module} failed in {where}: {error}", "error")
        for module, error in errors.items()
    )


@pytest.mark.parametrize("runtime", LOCAL_RUNTIMES)
def test_the_same_layer_passes_once_it_ships_the_host_modules_itself(
    tmp_path: Path, runtime: str, host_offers_modules: Path
) -> None:
    _interpreter(runtime)
    layer = _layer_using_host_modules(tmp_path / "layer")
    for needed in HOST_ONLY.values():
        (layer / "python" / f"{needed}.py").write_text("")
    code, report = _validate(layer, runtime)
    assert code == 0
    assert report["verdict"] == "valid"
    assert report["problems"] == []
    assert report["imports"]["status"] == "passed"
    assert report["imports"]["modules"] == dict.fromkeys([*HOST_ONLY, *HOST_ONLY.values()])


@pytest.mark.parametrize("runtime", LOCAL_RUNTIMES)
def test_sys_path_is_the_layers_two_folders_then_the_standard_library(
    tmp_path: Path, runtime: str, host_offers_modules: Path
) -> None:
    """A layer module reports the interpreter's sys.path and flags by raising them as its import error."""
    interpreter = _interpreter(runtime)
    version = target(runtime, "x86_64").version
    layer = tmp_path / "layer"
    site_packages = layer / "python" / "lib" / f"python{version}" / "site-packages"
    site_packages.mkdir(parents=True)
    (site_packages / "other.py").write_text("")
    (layer / "python" / "probe.py").write_text(
        "import sys\nraise RuntimeError(repr((sys.flags.isolated, sys.flags.no_site, sys.path)))\n"
    )
    code, report = _validate(layer, runtime)
    assert code == 1
    assert report["imports"]["modules"]["other"] is None
    prefix, _, raised = report["imports"]["modules"]["probe"].partition(": ")
    assert prefix == "RuntimeError"
    isolated, no_site, sys_path = ast.literal_eval(raised)
    assert (isolated, no_site) == (1, 1)
    # The two layer folders, in either order (which one Lambda puts first is not this test's subject),
    # then nothing but the interpreter's own standard library: no site-packages, no PYTHONPATH,
    # no user site, no current directory.
    assert set(sys_path[:2]) == {str((layer / "python").resolve()), str(site_packages.resolve())}
    lib = interpreter.parent.parent / "lib"
    assert sys_path[2:] == [
        str(lib / f"python{version.replace('.', '')}.zip"),
        str(lib / f"python{version}"),
        str(lib / f"python{version}" / "lib-dynload"),
    ]
