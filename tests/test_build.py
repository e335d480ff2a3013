"""build-layer end to end without Docker: real uv and pip, real wheels, real interpreters."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from packaging.version import Version

import builder
from builder import manifest, pipeline, runtimes
from builder.build import BuildOptions, build_layer
from builder.cli.main import cli
from builder.errors import InvalidLayer, ResolveError
from builder.host import find_interpreter, host_arch
from builder.manifest import tree_matches
from builder.progress import Silent

# Resolves from the package index (tests/conftest.py).
pytestmark = pytest.mark.network

LAMBDAKIT = [sys.executable, "-m", "builder"]
PSYCOPG2_BINARY = "psycopg2-binary==2.9.11"
# This file is about the paths without Docker; tests/docker covers the runtime-image check.
INTERPRETER_ONLY = ["--import-check", "interpreter"]
WHEELS_ONLY = ["--backend", "uv", *INTERPRETER_ONLY]


def _requirements(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def _build(
    tmp_path: Path,
    requirements: Path,
    runtime: str,
    arch: str = "x86_64",
    *,
    name: str = "layer",
    backend: str = "uv",
    **kw,
):
    options = BuildOptions(
        name=name,
        requirements=requirements,
        target=runtimes.target(runtime, arch),
        out=tmp_path / "out",
        backend=backend,
        import_check="interpreter",
        **kw,
    )
    return build_layer(options, Silent())


def _build_cli(name: str, requirements: Path, out: Path, *extra: str):
    argv = ["build-layer", name, "-r", str(requirements), *WHEELS_ONLY, "--out", str(out), *extra]
    return CliRunner().invoke(cli, argv)


# What this machine kind proves with local interpreters alone: pyenv's CPython 3.9 to 3.13 on
# x86_64. python3.14 has no interpreter here and arm64 none without Docker (tests/docker proves
# arm64 python3.11 in its stand-in image): those must say "not verified", the rest "valid".
PROVEN_BY_LOCAL_INTERPRETERS = frozenset((f"python3.{minor}", "x86_64") for minor in range(9, 14))


def _interpreter_expected(runtime: str, arch: str) -> bool:
    if host_arch() != "x86_64":
        pytest.fail("PROVEN_BY_LOCAL_INTERPRETERS describes x86_64 machines; write this machine's down")
    return (runtime, arch) in PROVEN_BY_LOCAL_INTERPRETERS


@pytest.mark.parametrize("arch", runtimes.ARCHES)
@pytest.mark.parametrize("runtime", runtimes.runtime_names())
def test_psycopg2_binary_every_runtime_and_arch(tmp_path, runtime, arch):
    result = _build(tmp_path, _requirements(tmp_path, PSYCOPG2_BINARY), runtime, arch)
    manifest = result.manifest
    assert manifest.packages == {"psycopg2-binary": "2.9.11"}
    validation = manifest.validation
    assert validation is not None and validation.problems == ()
    target = runtimes.target(runtime, arch)
    tag = f"cpython-{target.python_tag[2:]}-{target.arch.multiarch}"
    extensions = [p.name for p in (result.tree / "python" / "psycopg2").glob("_psycopg*.so")]
    assert extensions == [f"_psycopg.{tag}.so"]
    if _interpreter_expected(runtime, arch):
        assert result.verdict == "valid"
        assert validation.imports.modules == {"psycopg2": None}
        assert f"python{runtimes.target(runtime, arch).version}" in validation.imports.where
    else:
        # No interpreter of that version/arch here: said plainly, never a pass.
        assert result.verdict == "not-verified"
        assert validation.ok is False
        expected_reason = (
            f"this machine is x86_64, the layer is for {arch}"
            if arch != "x86_64"
            else f"no local Python {runtimes.target(runtime, arch).version} interpreter found"
        )
        assert validation.imports.reason == f"interpreter: {expected_reason}"
    assert manifest.highest_glibc_needed is not None
    assert Version(manifest.highest_glibc_needed) <= Version(runtimes.target(runtime, arch).glibc_text)
    assert set(manifest.files) == {
        n for n in zipfile.ZipFile(result.zip_path).namelist() if not n.endswith("/")
    }


def test_aws_psycopg2_python310_is_pruned_to_what_loads(tmp_path):
    result = _build(tmp_path, _requirements(tmp_path, "aws-psycopg2==1.3.8"), "python3.10")
    assert result.verdict == "valid"
    binaries = sorted(p.name for p in (result.tree / "python" / "psycopg2").glob("_psycopg*"))
    assert binaries == ["_psycopg.cpython-310-x86_64-linux-gnu.so"]
    manifest = result.manifest
    assert manifest.slim.bytes_saved > 60_000_000
    assert manifest.sizes.unzipped < 15_000_000
    assert (result.tree / "python" / "aws_psycopg2-1.3.8.dist-info" / "METADATA").is_file()


def test_aws_psycopg2_python312_fails_clearly(tmp_path):
    with pytest.raises(InvalidLayer) as err:
        _build(tmp_path, _requirements(tmp_path, "aws-psycopg2==1.3.8"), "python3.12")
    problems = err.value.report["problems"]
    codes = {p["code"] for p in problems}
    assert "no-compatible-binary" in codes
    message = next(p for p in problems if p["code"] == "no-compatible-binary")
    assert "psycopg2/_psycopg" in message["path"] and "python3.12" in message["message"]
    assert "psycopg2-binary" in message["hint"]
    assert not (tmp_path / "out" / "layer").exists()


@pytest.mark.parametrize(
    ("backend", "tags"), [("uv", "x86_64-manylinux_2_17"), ("pip", "manylinux_2_26_x86_64")]
)
def test_no_compatible_wheel_names_package_runtime_and_tags(tmp_path, backend, tags):
    # numpy 2.3.5 publishes only manylinux_2_27/2_28 wheels for cp311; python3.11 has glibc 2.26.
    with pytest.raises(ResolveError) as err:
        _build(tmp_path, _requirements(tmp_path, "numpy==2.3.5"), "python3.11", backend=backend)
    message = err.value.message
    assert "numpy==2.3.5" in message and "python3.11" in message and tags in message
    assert "--backend docker" in err.value.hint


def test_source_only_psycopg2_points_to_the_binary_flavour(tmp_path):
    with pytest.raises(ResolveError) as err:
        _build(tmp_path, _requirements(tmp_path, "psycopg2==2.9.10"), "python3.12")
    assert "psycopg2-binary" in err.value.hint


def test_rebuild_with_unchanged_inputs_is_a_noop(tmp_path):
    requirements = _requirements(tmp_path, PSYCOPG2_BINARY)
    first = _build(tmp_path, requirements, "python3.12")
    target_dir = os.readlink(first.path)
    second = _build(tmp_path, requirements, "python3.12")
    assert (first.status, second.status) == ("built", "up-to-date")
    assert os.readlink(second.path) == target_dir
    assert second.timings == {}


def test_clean_builds_give_the_same_zip(tmp_path):
    requirements = _requirements(tmp_path, PSYCOPG2_BINARY)
    first = _build(tmp_path, requirements, "python3.12", name="a")
    second = _build(tmp_path, requirements, "python3.12", name="a", force=True)
    assert second.status == "built"
    assert first.manifest.zip.sha256 == second.manifest.zip.sha256
    assert first.manifest.cache_key == second.manifest.cache_key


def test_failed_build_keeps_the_previous_layer(tmp_path):
    good = _build(tmp_path, _requirements(tmp_path, PSYCOPG2_BINARY), "python3.12")
    before = good.zip_path.read_bytes()
    with pytest.raises(ResolveError):
        _build(tmp_path, _requirements(tmp_path, "numpy==2.3.5"), "python3.11")
    assert good.zip_path.read_bytes() == before
    assert not list((tmp_path / "out" / ".builds").glob(".staging-*"))


def test_a_new_tool_version_rebuilds_what_unchanged_inputs_leave_as_they_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requirements = _requirements(tmp_path, "six==1.16.0")
    first = _build(tmp_path, requirements, "python3.12")
    first_build = os.readlink(first.path)
    second = _build(tmp_path, requirements, "python3.12")
    assert (first.status, second.status, second.timings) == ("built", "up-to-date", {})

    # Another lambdakit release, same inputs: manifest.py puts the version in the cache key,
    # pipeline.py writes it into layer.json.
    newer = builder.__version__ + ".post1"
    monkeypatch.setattr(manifest, "__version__", newer)
    monkeypatch.setattr(pipeline, "__version__", newer)
    third = _build(tmp_path, requirements, "python3.12")

    assert third.status == "built"
    assert {"resolve", "slim", "package", "publish"} <= set(third.timings)
    assert third.manifest.cache_key != first.manifest.cache_key
    assert first.manifest.tool_version == builder.__version__
    assert third.manifest.tool_version == newer
    assert os.readlink(third.path) != first_build
    assert json.loads((third.path / "layer.json").read_text())["tool"]["version"] == newer
    # And the new version's build is the one a further unchanged run keeps.
    assert _build(tmp_path, requirements, "python3.12").status == "up-to-date"


def _wheel(folder: Path, name: str, version: str, files: dict[str, str]) -> Path:
    """A pure-Python wheel written by hand: the files, METADATA, WHEEL and a RECORD of them all."""
    info = f"{name}-{version}.dist-info"
    members = {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in members.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    members[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in members.items():
            archive.writestr(path, text)
    return wheel


def test_a_build_that_fails_validation_keeps_the_previous_layer(tmp_path: Path) -> None:
    out = tmp_path / "out"
    good = _build(tmp_path, _requirements(tmp_path, "six==1.16.0"), "python3.12")
    link, zip_bytes, manifest = os.readlink(good.path), good.zip_path.read_bytes(), good.manifest
    builds = sorted(p.name for p in (out / ".builds").iterdir())
    # Resolves and packages fine; only the import check finds it broken.
    wheel = _wheel(tmp_path, "boom", "1.0", {"boom.py": "raise RuntimeError('boom on import')\n"})
    broken = tmp_path / "broken" / "requirements.txt"
    broken.parent.mkdir()
    broken.write_text(f"{wheel}\n")

    result = _build_cli("layer", broken, out, "--json")

    assert result.exit_code == 1, result.output
    document = json.loads(result.output)
    assert (document["error"], document["step"]) == ("InvalidLayer", "validate")
    problems = document["validation"]["problems"]
    assert [(p["code"], p["path"]) for p in problems] == [("import-failed", "boom")]
    assert "RuntimeError: boom on import" in problems[0]["message"]
    assert os.readlink(good.path) == link
    assert good.zip_path.read_bytes() == zip_bytes
    assert json.loads((good.path / "layer.json").read_text()) == manifest.to_dict()
    # Nothing of the failed build is left: no staging folder, no build folder, only the lock.
    assert sorted(p.name for p in (out / ".builds").iterdir()) == builds


def test_concurrent_builds_of_one_layer_do_not_corrupt_it(tmp_path):
    requirements = _requirements(tmp_path, PSYCOPG2_BINARY)
    out = tmp_path / "out"
    argv = [
        *LAMBDAKIT,
        "build-layer",
        "c",
        "-r",
        str(requirements),
        "--out",
        str(out),
        "--json",
        "--force",
    ]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    results = [json.loads(p.communicate(timeout=300)[0]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert all(r["status"] == "built" for r in results)
    manifest = json.loads((out / "c" / "layer.json").read_text())
    assert manifest["zip"]["sha256"] in {r["manifest"]["zip"]["sha256"] for r in results}
    assert len([d for d in (out / ".builds").iterdir() if d.is_dir()]) == 1
    # What is on disk, not only what the builds said: the zip and the tree are the manifest's.
    zip_bytes = (out / "c" / "c.zip").read_bytes()
    assert hashlib.sha256(zip_bytes).hexdigest() == manifest["zip"]["sha256"]
    assert tree_matches(manifest["file_sizes"], out / "c" / "tree")
    with zipfile.ZipFile(out / "c" / "c.zip") as archive:
        assert archive.testzip() is None
        names = {n for n in archive.namelist() if not n.endswith("/")}
    assert names == set(manifest["files"])


def test_cli_bad_requirement_is_a_clear_usage_error(tmp_path):
    requirements = _requirements(tmp_path, "psycopg2-binary=>2.9")
    result = _build_cli("bad", requirements, tmp_path)
    assert result.exit_code == 2, result.output
    # uv is the parser: its message points at the line and the character.
    assert "uv could not read the requirements" in result.output and "requirements.txt" in result.output
    assert "psycopg2-binary=>2.9" in result.output
    assert "hint:" in result.output and "Traceback" not in result.output


def test_cli_missing_layer_definition(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["build-layer", "nosuch", *WHEELS_ONLY])
    assert result.exit_code == 2
    assert "layers/nosuch/requirements.txt does not exist" in result.output


def test_cli_json_for_a_failed_resolve(tmp_path):
    requirements = _requirements(tmp_path, "numpy==2.3.5")
    result = _build_cli("np", requirements, tmp_path, "--runtime", "python3.11", "--json")
    assert result.exit_code == 1
    document = json.loads(result.output)
    assert document["ok"] is False and document["step"] == "resolve" and "numpy" in document["message"]


def test_cli_build_then_validate_the_output(tmp_path):
    requirements = _requirements(tmp_path, PSYCOPG2_BINARY)
    out = tmp_path / "out"
    exports = ["--export", str(tmp_path / "artifacts"), "--export-function", str(tmp_path / "function")]
    built = _build_cli("pg", requirements, out, "--json", *exports)
    assert built.exit_code == 0, built.output
    assert json.loads(built.output)["manifest"]["validation"]["verdict"] == "valid"
    assert (tmp_path / "artifacts" / "python" / "psycopg2" / "__init__.py").is_file()
    assert (tmp_path / "function" / "psycopg2" / "__init__.py").is_file()
    for path in (out / "pg", out / "pg" / "pg.zip"):
        checked = CliRunner().invoke(
            cli, ["validate", str(path), "--runtime", "python3.12", "--json", *INTERPRETER_ONLY]
        )
        assert checked.exit_code == 0, checked.output
        report = json.loads(checked.output)
        assert report["ok"] is True and report["runtime"] == "python3.12" and report["arch"] == "x86_64"
        assert set(report) >= {"schema", "ok", "verdict", "problems", "imports"}


def test_psycopg3_binary_flavour(tmp_path):
    result = _build(tmp_path, _requirements(tmp_path, "psycopg[binary]==3.2.13"), "python3.12")
    assert result.verdict == "valid" and result.manifest.validation is not None, result.manifest.validation
    assert {"psycopg", "psycopg-binary"} <= set(result.manifest.packages)
    assert {"psycopg", "psycopg_binary"} <= set(result.manifest.validation.imports.modules)


def test_mixed_requirements_pick_wheels_for_amazon_linux_2(tmp_path):
    # pydantic-core publishes manylinux_2_34 wheels beside manylinux_2_17 ones; a
    # resolver offering 2_34 tags for python3.11 (glibc 2.26) would pick the wrong one.
    requirements = _requirements(tmp_path, "numpy==2.2.6", "cryptography==46.0.3", "pydantic-core==2.41.5",
                                 "lxml==6.0.2")  # fmt: skip
    result = _build(tmp_path, requirements, "python3.11")
    assert result.verdict == "valid", result.manifest.validation
    glibc = result.manifest.highest_glibc_needed
    assert glibc is not None and Version(glibc) <= Version("2.26")  # not as strings
    wheel = next((result.tree / "python").glob("pydantic_core-*.dist-info")) / "WHEEL"
    tags = [line.split(": ")[1] for line in wheel.read_text().splitlines() if line.startswith("Tag: ")]
    assert tags and not any("manylinux_2_34" in t for t in tags)


def test_layer_for_cp311_validated_as_python312_is_an_abi_mismatch(tmp_path):
    built = _build(tmp_path, _requirements(tmp_path, PSYCOPG2_BINARY), "python3.11")
    result = CliRunner().invoke(
        cli,
        [
            "validate",
            str(built.zip_path),
            "--runtime",
            "python3.12",
            "--json",
            *INTERPRETER_ONLY,
        ],
    )
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert "abi-mismatch" in {p["code"] for p in report["problems"]}
    # The real interpreter agrees: the cp311 extension is never considered by 3.12.
    assert "No module named 'psycopg2._psycopg'" in report["imports"]["modules"]["psycopg2"]


def test_arm64_layer_validated_as_x86_64_is_an_arch_mismatch(tmp_path):
    built = _build(tmp_path, _requirements(tmp_path, PSYCOPG2_BINARY), "python3.12", "arm64")
    result = CliRunner().invoke(
        cli,
        [
            "validate",
            str(built.path),
            "--runtime",
            "python3.12",
            "--arch",
            "x86_64",
            *INTERPRETER_ONLY,
        ],
    )
    assert result.exit_code == 1
    assert "arch-mismatch" in result.output and "INVALID" in result.output


def test_packages_at_the_zip_root_are_a_bad_layout(tmp_path):
    built = _build(tmp_path, _requirements(tmp_path, PSYCOPG2_BINARY), "python3.12")
    flat = tmp_path / "flat.zip"
    with zipfile.ZipFile(built.zip_path) as src, zipfile.ZipFile(flat, "w") as dst:
        for info in src.infolist():
            if info.filename.startswith("python/") and not info.is_dir():
                dst.writestr(info.filename.removeprefix("python/"), src.read(info))
    result = CliRunner().invoke(
        cli,
        [
            "validate",
            str(flat),
            "--runtime",
            "python3.12",
            "--json",
            *INTERPRETER_ONLY,
        ],
    )
    report = json.loads(result.output)
    assert result.exit_code == 1
    assert "bad-layout" in {p["code"] for p in report["problems"]}
    assert report["imports"]["status"] == "not-verified"  # nothing importable on sys.path


def test_no_interpreter_means_not_verified_and_exit_3(tmp_path, monkeypatch):
    built = _build(tmp_path, _requirements(tmp_path, PSYCOPG2_BINARY), "python3.14")
    assert built.verdict == "not-verified"
    # Hide pyenv's builds so that no local 3.14 exists, whatever this machine has.
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    if find_interpreter("3.14") is not None:
        pytest.fail("a system python3.14 exists; this test needs a machine without one")
    result = CliRunner().invoke(
        cli,
        [
            "validate",
            str(built.path),
            "--runtime",
            "python3.14",
            *INTERPRETER_ONLY,
        ],
    )
    assert result.exit_code == 3
    assert "NOT VERIFIED" in result.output and "no local Python 3.14 interpreter" in result.output


def test_unverified_build_exits_3_unless_allowed(tmp_path):
    requirements = _requirements(tmp_path, PSYCOPG2_BINARY)
    argv = ["build-layer", "arm", "-r", str(requirements), "--arch", "arm64", *WHEELS_ONLY,
            "--out", str(tmp_path / "out")]  # fmt: skip
    if _interpreter_expected("python3.12", "arm64"):
        pytest.fail("this test needs a machine that cannot import-check arm64 layers without Docker")
    strict = CliRunner().invoke(cli, argv)
    assert strict.exit_code == 3 and "NOT VERIFIED" in strict.output
    allowed = CliRunner().invoke(cli, [*argv, "--allow-unverified"])
    assert allowed.exit_code == 0 and "NOT VERIFIED" in allowed.output
    assert json.loads((tmp_path / "out" / "arm" / "layer.json").read_text())["validation"]["verdict"] == (
        "not-verified"
    )
