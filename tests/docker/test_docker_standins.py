"""The offline stand-ins: built once, cached, labelled, and shaped like the Lambda images."""

from __future__ import annotations

from collections.abc import Callable

import docker

from builder.docker import container, standin
from builder.host import host_arch
from builder.progress import Silent
from builder.runtimes import target

RunIn = Callable[[str, list[str]], tuple[int, list[str]]]


def test_a_second_build_finds_every_standin_cached(standins: list[standin.Outcome]) -> None:
    again = standin.build_standins(("python3.11", "python3.12"), progress=Silent())
    # "skipped": an official image is present under that name and is left alone.
    expected = {o.image: "skipped" if o.status == "skipped" else "cached" for o in standins}
    assert {o.image: o.status for o in again} == expected


def test_standins_say_what_they_fake(
    docker_client: docker.DockerClient, standin_only: Callable[[str], None]
) -> None:
    t = target("python3.12", host_arch())
    for name in (t.runtime_image, t.build_image):
        standin_only(name)
        facts = container.image_facts(docker_client, name)
        assert facts is not None and facts.standin
        assert facts.labels[f"{container.STANDIN_LABEL}.fakes"] == name
        assert "glibc 2.36" in facts.labels[f"{container.STANDIN_LABEL}.os"]
        assert facts.labels[f"{container.STANDIN_LABEL}.real-os"] == "Amazon Linux 2023, glibc 2.34"
        assert "(stand-in: Debian 12" in facts.describe()


def test_runtime_standin_has_what_lambda_and_sam_rely_on(run_in: RunIn) -> None:
    t = target("python3.12", host_arch())
    script = (
        "set -e; python3 --version; python3.12 -c 'import sys; print(sys.prefix)';"
        " test -x /var/runtime/bootstrap && echo bootstrap-ok;"
        " PYTHONPATH=/var/runtime python3 -c 'import awslambdaric; print(\"ric-ok\")';"
        " mv --version >/dev/null && chmod --version >/dev/null && echo coreutils-ok;"
        " echo LD=$LD_LIBRARY_PATH; echo PATH=$PATH; echo TASK=$LAMBDA_TASK_ROOT"
    )
    status, lines = run_in(t.runtime_image, ["/bin/sh", "-c", script])
    assert status == 0, lines
    assert lines[0].startswith("Python 3.12.") and lines[1] == "/var/lang"
    for expected in ("bootstrap-ok", "ric-ok", "coreutils-ok", "TASK=/var/task"):
        assert expected in lines
    ld = next(line for line in lines if line.startswith("LD="))
    path = next(line for line in lines if line.startswith("PATH="))
    assert ld.endswith(":/opt/lib") and "/opt/bin" in path.split(":")


def test_build_standin_can_compile_against_libpq(run_in: RunIn) -> None:
    t = target("python3.12", host_arch())
    script = "set -e; gcc --version | head -n 1; pg_config --version; python3.12 -m pip --version"
    status, lines = run_in(t.build_image, ["/bin/sh", "-c", script])
    assert status == 0, lines
    assert any(line.startswith("PostgreSQL") for line in lines)


def test_build_standin_picks_wheels_for_lambdas_glibc_not_debians(run_in: RunIn) -> None:
    t = target("python3.11", host_arch())  # Amazon Linux 2: glibc 2.26; the stand-in has 2.36
    status, lines = run_in(t.build_image, ["/var/lang/bin/python3.11", "-m", "pip", "debug", "--verbose"])
    assert status == 0, lines
    tags = {line.strip() for line in lines}
    wheel_arch = t.arch.wheel_arch
    assert f"cp311-cp311-manylinux_2_26_{wheel_arch}" in tags
    assert f"cp311-cp311-manylinux_2_27_{wheel_arch}" not in tags
