"""The Docker backend's and stand-ins' logic that needs no engine (the rest is in tests/docker/)."""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

import pytest

from builder import runtimes
from builder.backends import bundle_libs
from builder.backends.docker import system_packages
from builder.docker import container, images, rootfs, standin
from builder.errors import EnvironmentProblem
from builder.host import host_arch
from builder.progress import Silent
from builder.runtimes import target


def test_system_packages_follow_the_requirements() -> None:
    assert system_packages(["psycopg2", "requests"]) == {
        "DNF_PACKAGES": "libpq-devel",
        "YUM_PACKAGES": "postgresql-devel",
        "APT_PACKAGES": "libpq-dev",
    }
    assert set(system_packages(["psycopg2-binary"]).values()) == {""}


def test_line_buffer_joins_chunks_and_drops_colour() -> None:
    lines: list[str] = []
    buffer = container.LineBuffer(lines.append)
    for chunk in ("Step 1/2 : RUN x\n ---> Run", "ning in abc\r\n\x1b[91mWARNING: red\x1b[0m\n", "tail"):
        buffer.feed(chunk)
    buffer.close()
    assert lines == ["Step 1/2 : RUN x", " ---> Running in abc", "WARNING: red", "tail"]


def test_missing_image_hint_names_the_standin_command_only_where_one_can_be_built() -> None:
    foreign = "arm64" if host_arch() == "x86_64" else "x86_64"
    buildable = target("python3.13", foreign).runtime_image  # trixie's python, under qemu
    assert images.missing_image_hint(buildable) == (
        f"docker pull {buildable}, or build the offline stand-in with "
        f"`lambdakit images build-standins --runtime python3.13 --arch {foreign} --kind runtime`"
    )
    unbuildable_images = (
        target("python3.12", foreign).runtime_image,
        target("python3.13", foreign).build_image,
        "lambdakit/no-such-image:1",
    )
    for unbuildable in unbuildable_images:
        assert images.missing_image_hint(unbuildable) == (
            f"docker pull {unbuildable}; no offline stand-in of it can be built here"
        )


def test_a_foreign_arch_gets_runtime_standins_of_the_suites_that_ship_each_python() -> None:
    foreign = "arm64" if container.host_docker_arch() == "amd64" else "x86_64"
    standins, skipped = standin.plan(runtimes.runtime_names(), arches=[foreign])
    # The catalogue's debian_suite for each version: one runtime image each, no build image.
    assert [(s.image, s.prefix, s.suite) for s in standins] == [
        (target("python3.9", foreign).runtime_image, None, "bullseye"),
        (target("python3.11", foreign).runtime_image, None, "bookworm"),
        (target("python3.13", foreign).runtime_image, None, "trixie"),
        (target("python3.14", foreign).runtime_image, None, "sid"),
    ]
    reasons = {o.image: o.detail for o in skipped}
    assert set(reasons) == {t.build_image for t in runtimes.all_targets() if t.arch.name == foreign} | {
        target("python3.10", foreign).runtime_image,
        target("python3.12", foreign).runtime_image,
    }
    assert reasons[target("python3.12", foreign).runtime_image] == (
        f"no {foreign} CPython 3.12 here: only this machine's architecture ({host_arch()}) has local builds "
        "to copy, and no Debian suite ships it (bullseye 3.9, bookworm 3.11, trixie 3.13, sid 3.14)"
    )
    # Each its own base image, which carries that suite's python.
    sid = standins[-1]
    assert sid.base.tag.startswith(f"lambdakit/standin-base:sid-{foreign}-")
    assert sid.base.packages == ("python3.14",)
    assert f"build-standins --runtime python3.14 --arch {foreign}" in images.missing_image_hint(sid.image)


def test_this_machines_arch_copies_its_own_builds_and_falls_back_to_a_suites_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pyenv with only a 3.12 build: 3.12 is copied, 3.14 comes from sid (runtime image only).
    build = tmp_path / "pyenv" / "versions" / "3.12.9"
    (build / "lib" / "python3.12").mkdir(parents=True)
    (build / "lib" / "python3.12" / "os.py").write_text("")
    (build / "bin").mkdir()
    (build / "bin" / "python3.12").write_text("#!/bin/sh\n")  # found by name; never run here
    (build / "bin" / "python3.12").chmod(0o755)
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    monkeypatch.setattr(standin, "_python_version", lambda prefix, version: "3.12.9")
    standins, skipped = standin.plan(["python3.12", "python3.14"], arches=[host_arch()])
    assert [(s.kind, s.target.runtime, s.suite, s.prefix) for s in standins] == [
        ("runtime", "python3.12", "bookworm", build),
        ("build", "python3.12", "bookworm", build),
        ("runtime", "python3.14", "sid", None),
    ]
    assert [o.image for o in skipped] == [target("python3.14", host_arch()).build_image]
    assert "pyenv install 3.14" in skipped[0].detail


def test_bundling_leaves_glibc_and_provided_libraries_to_the_runtime(tmp_path: Path) -> None:
    _ssl = pytest.importorskip("_ssl")
    if not getattr(_ssl, "__file__", None):
        pytest.skip("this Python has _ssl built in")
    layer = tmp_path / "layer"
    (layer / "python").mkdir(parents=True)
    shutil.copy(_ssl.__file__, layer / "python")
    found, missing = bundle_libs.needed_libraries(str(layer), {"libcrypto.so.3"})
    assert set(found) == {"libssl.so.3"} and not missing


def test_standin_interpreter_tree_leaves_out_tests_and_foreign_packages(tmp_path: Path) -> None:
    prefix = tmp_path / "3.12.9"
    stdlib = prefix / "lib" / "python3.12"
    kept = {"os.py", "site-packages/pip/__init__.py", "site-packages/pip-24.0.dist-info/RECORD"}
    dropped = {"test/test_os.py", "site-packages/numpy/__init__.py", "config-3.12/libpython3.12.a"}
    for rel in kept | dropped:
        (stdlib / rel).parent.mkdir(parents=True, exist_ok=True)
        (stdlib / rel).write_text("")
    t = target("python3.12", "x86_64")
    entry = standin.Standin(kind="runtime", target=t, prefix=prefix, python="3.12.9", suite="bookworm")
    archive = tmp_path / "lang.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(prefix, arcname="lang", filter=standin.interpreter_filter(entry))
    with tarfile.open(archive) as tar:
        files = {m.name.removeprefix("lang/lib/python3.12/") for m in tar if m.isfile()}
    assert files == kept


def test_debian_mirror_comes_from_the_environment_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMBDAKIT_DEBIAN_MIRROR", "http://mirror.example/debian")
    assert rootfs.debian_mirror() == "http://mirror.example/debian"


def test_an_unreachable_debian_mirror_is_an_environment_problem_and_caches_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        pytest.fail("this test runs debootstrap: as root, with scripts/ensure-docker.sh --standin run first")
    monkeypatch.setenv("LAMBDAKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LAMBDAKIT_DEBIAN_MIRROR", "http://127.0.0.1:9/debian")  # nothing listens on port 9
    base = rootfs.RootFs(arch=target("python3.13", "arm64").arch, suite="trixie", python="3.13")
    with pytest.raises(EnvironmentProblem, match=r"^debootstrap failed \(debootstrap trixie arm64") as err:
        rootfs.tarball(base, Silent())
    assert err.value.exit_code == 2
    assert list((tmp_path / "cache" / "standin").iterdir()) == []  # no tarball, no scratch folder left
