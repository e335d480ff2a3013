"""The Docker backend's and stand-ins' logic that needs no engine (the rest is in tests/docker/)."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from builder import container, standin
from builder.backends import bundle_libs
from builder.backends.docker import system_packages
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


def test_missing_image_hint_offers_a_standin_only_for_this_machines_arch() -> None:
    native = f"linux/{container.host_docker_arch()}"
    foreign = "linux/arm64" if container.host_docker_arch() == "amd64" else "linux/amd64"
    assert "lambdakit images build-standins" in container.missing_image_hint("x", native)
    assert "no offline stand-in" in container.missing_image_hint("x", foreign)


def test_a_foreign_arch_gets_a_runtime_standin_of_debians_python_only() -> None:
    foreign = "arm64" if container.host_docker_arch() == "amd64" else "x86_64"
    standins, skipped = standin.plan(["python3.11", "python3.12"], arches=[foreign])
    assert [(s.image, s.prefix) for s in standins] == [(target("python3.11", foreign).runtime_image, None)]
    assert {o.image for o in skipped} == {
        target("python3.11", foreign).build_image,
        target("python3.12", foreign).build_image,
        target("python3.12", foreign).runtime_image,
    }
    # Its own base image, which carries Debian's python3.11.
    assert standins[0].base.tag.startswith(f"lambdakit/standin-base:bookworm-{foreign}-")
    assert "python3.11" in standins[0].base.packages
    hint = container.missing_image_hint(standins[0].image, target("python3.11", foreign).arch.docker_platform)
    assert f"build-standins --runtime python3.11 --arch {foreign}" in hint


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
    entry = standin.Standin(kind="runtime", target=t, prefix=prefix, python="3.12.9")
    archive = tmp_path / "lang.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(prefix, arcname="lang", filter=standin.interpreter_filter(entry))
    with tarfile.open(archive) as tar:
        files = {m.name.removeprefix("lang/lib/python3.12/") for m in tar if m.isfile()}
    assert files == kept


def test_debian_mirror_comes_from_the_environment_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMBDAKIT_DEBIAN_MIRROR", "http://mirror.example/debian")
    assert standin.debian_mirror() == "http://mirror.example/debian"
