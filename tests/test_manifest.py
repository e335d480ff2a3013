"""layer.json read and written (builder/manifest.py), and the cache key."""

import dataclasses
import importlib.metadata
import json
import os
import tomllib
from pathlib import Path

import pytest

import builder
from builder import manifest, runtimes
from builder.manifest import (
    Manifest,
    Sizes,
    SlimSummary,
    ZipRecord,
    cache_key,
    read_manifest,
    zip_matches,
    zip_record,
)
from builder.package import write_zip
from builder.problems import Problem
from builder.report import ValidationReport
from builder.verify import ImportCheck

KEY_INPUTS = dict(
    requirements_text="a==1\n",
    runtime="python3.12",
    arch="x86_64",
    backend="uv",
    data_texts=("{}", "[]"),
    validate=True,
    import_check="auto",
)


def test_cache_key_changes_with_each_input():
    base = KEY_INPUTS
    variants = [
        ("requirements_text", "a==2\n"),
        ("runtime", "python3.11"),
        ("arch", "arm64"),
        ("backend", "docker"),
        ("data_texts", ("{ }", "[]")),  # the catalogue: marker environments, tags
        ("data_texts", ("{}", "[ ]")),  # the base libraries
        ("validate", False),
        ("import_check", "interpreter"),
    ]
    keys = {cache_key(**base)} | {cache_key(**{**base, field: value}) for field, value in variants}
    assert len(keys) == len(variants) + 1


def test_cache_key_changes_with_the_tool_version(monkeypatch: pytest.MonkeyPatch) -> None:
    # A new lambdakit may slim, audit or zip differently: its first build must not take an
    # older release's layer as up to date. The key reads the version manifest.py imported.
    before = cache_key(**KEY_INPUTS)
    assert cache_key(**KEY_INPUTS) == before  # nothing else in the key varies between calls

    monkeypatch.setattr(manifest, "__version__", builder.__version__ + ".post1")

    assert cache_key(**KEY_INPUTS) != before


def test_the_version_is_written_once_and_is_the_one_in_the_cache_key() -> None:
    # pyproject.toml reads builder.__version__: a release bumps one place, and the cache key sees it.
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert manifest.__version__ == builder.__version__ == importlib.metadata.version("lambdakit")


def test_a_published_zip_is_trusted_by_size_and_time_and_rehashed_when_they_change(tmp_path):
    tree = tmp_path / "tree"
    (tree / "python").mkdir(parents=True)
    (tree / "python" / "m.py").write_text("X = 1\n")
    packaged = write_zip(tree, tmp_path / "l.zip")
    recorded = zip_record(packaged.zip_path, packaged.zip_sha256)
    assert zip_matches(recorded, packaged.zip_path)

    # Same bytes, new time (copied back, touched): the full hash settles it.
    os.utime(packaged.zip_path, ns=(1, 1))
    assert zip_matches(recorded, packaged.zip_path)
    # Other bytes: not the published layer any more.
    packaged.zip_path.write_bytes(packaged.zip_path.read_bytes() + b"\0")
    assert not zip_matches(recorded, packaged.zip_path)
    packaged.zip_path.unlink()
    assert not zip_matches(recorded, packaged.zip_path)


def _manifest(*, verdict_problems: tuple[Problem, ...] = ()) -> Manifest:
    target = runtimes.target("python3.12", "x86_64")
    report = ValidationReport(
        target=target,
        problems=verdict_problems,
        imports=ImportCheck(status="passed", where="local interpreter", modules={"m": None}),
    )
    return Manifest(
        name="l",
        tool_version=builder.__version__,
        runtime=target.runtime,
        arch=target.arch.name,
        os_name=target.os_name,
        runtime_glibc=target.glibc_text,
        highest_glibc_needed=None,
        backend="uv",
        cache_key="k" * 64,
        requirements_sha256="r" * 64,
        packages={"m": "1.0"},
        sizes=Sizes(unzipped=6, zipped=120),
        slim=SlimSummary(removed_files=0, bytes_saved=0),
        zip=ZipRecord(file="l.zip", sha256="z" * 64, bytes=120, mtime_ns=1),
        validation=report,
        files={"python/m.py": "f" * 64},
        file_sizes={"python/m.py": 6},
    )


def test_a_manifest_reads_back_as_it_was_written(tmp_path: Path) -> None:
    path = tmp_path / "layer.json"
    for written in (_manifest(), dataclasses.replace(_manifest(), validation=None)):
        path.write_text(json.dumps(written.to_dict(), indent=2, sort_keys=True) + "\n")
        assert read_manifest(path) == written
    assert json.loads(path.read_text())["validation"] == {"verdict": "unvalidated", "ok": False}


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda d: {**d, "schema": 2},
        lambda d: {k: v for k, v in d.items() if k != "cache_key"},
        lambda d: {**d, "sizes": {"unzipped": "6", "zipped": 120}},
        lambda d: {**d, "zip": {**d["zip"], "bytes": True}},
        lambda d: {**d, "tool": {"name": "other", "version": "1"}},
        lambda d: {**d, "extra": 1},
        lambda d: {**d, "validation": {**d["validation"], "verdict": "invalid"}},
        lambda d: {**d, "validation": {**d["validation"], "problems": [{"code": "no-such-code"}]}},
        lambda d: {**d, "validation": {**d["validation"], "runtime": "python2.7"}},
        lambda d: [d],
    ],
)
def test_a_foreign_or_corrupt_manifest_reads_as_none(tmp_path: Path, corrupt) -> None:
    # None is a cache miss: the layer is built again rather than trusted.
    path = tmp_path / "layer.json"
    path.write_text(json.dumps(corrupt(_manifest().to_dict())))
    assert read_manifest(path) is None
    path.write_text("{not json")
    assert read_manifest(path) is None
    assert read_manifest(tmp_path / "missing.json") is None


def test_a_recorded_problem_reads_back(tmp_path: Path) -> None:
    problem = Problem(code="size-limit", path=".", message="too big", hint="smaller", severity="warning")
    recorded = _manifest(verdict_problems=(problem,))
    path = tmp_path / "layer.json"
    path.write_text(json.dumps(recorded.to_dict()))
    assert read_manifest(path) == recorded


# A layer.json as lambdakit wrote it before the manifest was typed (8fad9a2, trimmed to one file):
# the typed reader takes it as it is, so an upgrade does not rebuild every layer.
WRITTEN_BEFORE = """{
 "arch": "x86_64", "backend": "uv", "cache_key": "4c87ddd74c00", "highest_glibc_needed": "2.14",
 "file_sizes": {"python/six.py": 2}, "files": {"python/six.py": "e6184ce1"},
 "name": "api-deps", "os": "Amazon Linux 2023", "packages": {"six": "1.16.0"},
 "requirements_sha256": "f538dc22", "runtime": "python3.12", "runtime_glibc": "2.34", "schema": 1,
 "sizes": {"unzipped": 9571681, "zipped": 3130153}, "slim": {"bytes_saved": 607, "removed_files": 2},
 "tool": {"name": "lambdakit", "version": "0.1.0"},
 "validation": {"arch": "x86_64", "imports": {"modules": {"six": null}, "reason": "", "status": "passed",
   "where": "image public.ecr.aws/lambda/python:3.12-x86_64"},
  "ok": true, "problems": [], "runtime": "python3.12", "schema": 1, "verdict": "valid"},
 "zip": {"bytes": 3130153, "file": "api-deps.zip", "mtime_ns": 1796310293445037588, "sha256": "d969bccb"}
}"""


def test_a_manifest_written_before_the_typed_reader_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "layer.json"
    path.write_text(WRITTEN_BEFORE)
    recorded = read_manifest(path)
    assert recorded is not None
    assert (recorded.verdict, recorded.packages, recorded.zip.file) == (
        "valid",
        {"six": "1.16.0"},
        "api-deps.zip",
    )
    assert recorded.to_dict() == json.loads(WRITTEN_BEFORE)
