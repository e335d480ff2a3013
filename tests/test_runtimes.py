import json
import re

import pytest
from click.testing import CliRunner

from builder import runtimes
from builder.cli.main import cli


def test_catalogue_covers_every_runtime_and_arch():
    names = runtimes.runtime_names()
    assert names == [f"python3.{minor}" for minor in range(9, 15)]
    assert len(runtimes.all_targets()) == 12


@pytest.mark.parametrize(
    ("runtime", "glibc", "os_id"),
    [
        ("python3.9", (2, 26), "amazonlinux2"),
        ("python3.11", (2, 26), "amazonlinux2"),
        ("python3.12", (2, 34), "amazonlinux2023"),
        ("python3.14", (2, 34), "amazonlinux2023"),
    ],
)
def test_os_and_glibc(runtime, glibc, os_id):
    t = runtimes.target(runtime, "x86_64")
    assert (t.glibc, t.os_id) == (glibc, os_id)


def test_platform_tags_never_exceed_glibc_and_include_aliases():
    tags = runtimes.target("python3.11", "x86_64").platform_tags
    assert tags[0] == "manylinux_2_26_x86_64"
    assert "manylinux_2_27_x86_64" not in tags
    assert {
        "manylinux1_x86_64",
        "manylinux2010_x86_64",
        "manylinux2014_x86_64",
        "manylinux_2_5_x86_64",
    } <= set(tags)
    arm = runtimes.target("python3.12", "arm64").platform_tags
    assert arm[0] == "manylinux_2_34_aarch64" and arm[-1] == "manylinux2014_aarch64"
    assert "manylinux_2_16_aarch64" not in arm and not any("manylinux1" in t for t in arm)


def test_images_and_abi():
    t = runtimes.target("python3.13", "arm64")
    assert t.build_image == "public.ecr.aws/sam/build-python3.13:latest-arm64"
    assert t.runtime_image == "public.ecr.aws/lambda/python:3.13-arm64"
    assert t.python_tag == "cp313"
    assert t.extension_suffixes[0] == ".cpython-313-aarch64-linux-gnu.so"


def test_unknown_runtime_names_the_choices():
    with pytest.raises(ValueError, match=r"python3\.12"):
        runtimes.target("python2.7", "x86_64")
    with pytest.raises(ValueError, match="x86_64, arm64"):
        runtimes.target("python3.12", "ppc64le")


def test_catalogue_check_rejects_inconsistent_rows():
    from importlib import resources

    data = json.loads(resources.files("builder").joinpath("data/runtimes.json").read_text())
    data["runtimes"].append(
        {"name": "python3.15", "version": "3.15", "os": "amazonlinux2", "deprecated": False}
    )
    with pytest.raises(runtimes.CatalogueError, match="older glibc"):
        runtimes._check(data)
    data["runtimes"][-1]["os"] = "windows"
    with pytest.raises(runtimes.CatalogueError, match="unknown OS"):
        runtimes._check(data)


@pytest.mark.parametrize("t", runtimes.all_targets(), ids=lambda t: f"{t.runtime}-{t.arch.name}")
def test_marker_environment_and_uv_platform_are_the_targets(t: runtimes.Target) -> None:
    markers = t.marker_environment
    assert markers["python_version"] == t.version
    assert markers["python_full_version"].startswith(t.version + ".")
    assert markers["platform_machine"] == {"x86_64": "x86_64", "arm64": "aarch64"}[t.arch.name]
    assert (markers["sys_platform"], markers["platform_system"], markers["implementation_name"]) == (
        "linux",
        "Linux",
        "cpython",
    )
    # uv's platform never offers a wheel above the runtime's glibc.
    major, minor = map(int, t.uv_platform_glibc.split("."))
    assert (major, minor) <= t.glibc
    assert t.uv_platform == f"{t.arch.wheel_arch}-manylinux_{major}_{minor}"
    expected = "2.34" if t.os_id == "amazonlinux2023" else "2.17"  # uv names nothing from 2.18 to 2.27
    assert t.uv_platform_glibc == expected


# `lambdakit runtimes`: "python3.12   x86_64  Amazon Linux 2023  glibc 2.34 (deprecated)".
RUNTIMES_LINE = re.compile(
    r"^(?P<runtime>\S+) +(?P<arch>\S+) +(?P<os>.+?) +glibc (?P<glibc>\S+)(?P<note> \(deprecated\))?$"
)


def test_runtimes_command_prints_every_catalogue_target_with_its_os_glibc_and_deprecation() -> None:
    result = CliRunner().invoke(cli, ["runtimes"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    parsed = []
    for line in lines:
        match = RUNTIMES_LINE.match(line)
        assert match, f"not a runtime line: {line!r}"
        parsed.append(
            (match["runtime"], match["arch"], match["os"], match["glibc"], match["note"] is not None)
        )
    # Derived from the catalogue, so a row added to runtimes.json must show up here, in catalogue order.
    expected = [
        (t.runtime, t.arch.name, t.os_name, t.glibc_text, t.deprecated) for t in runtimes.all_targets()
    ]
    assert parsed == expected
    # Literal facts, so a wrong catalogue fails too rather than being echoed back.
    rows = {(runtime, arch): (os_name, glibc) for runtime, arch, os_name, glibc, _ in parsed}
    assert rows["python3.12", "x86_64"] == ("Amazon Linux 2023", "2.34")
    assert rows["python3.11", "arm64"] == ("Amazon Linux 2", "2.26")


def test_runtimes_json_gives_every_targets_facts_and_image_names() -> None:
    result = CliRunner().invoke(cli, ["runtimes", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["schema"] == 1
    expected = [
        {
            "runtime": t.runtime,
            "arch": t.arch.name,
            "os": t.os_name,
            "glibc": t.glibc_text,
            "deprecated": t.deprecated,
            "build_image": t.build_image,
            "runtime_image": t.runtime_image,
            "platform_tags": list(t.platform_tags),
            "uv_platform": t.uv_platform,
            "marker_environment": t.marker_environment,
        }
        for t in runtimes.all_targets()
    ]
    assert document["runtimes"] == expected
    rows = {(row["runtime"], row["arch"]): row for row in document["runtimes"]}
    # Literal facts: the image names the Docker backend and the import check pull, and the glibc the
    # audit holds a layer to.
    py312 = rows["python3.12", "x86_64"]
    assert (py312["os"], py312["glibc"]) == ("Amazon Linux 2023", "2.34")
    assert py312["runtime_image"] == "public.ecr.aws/lambda/python:3.12-x86_64"
    assert py312["build_image"] == "public.ecr.aws/sam/build-python3.12:latest-x86_64"
    assert py312["uv_platform"] == "x86_64-manylinux_2_34"
    py311 = rows["python3.11", "arm64"]
    assert (py311["os"], py311["glibc"]) == ("Amazon Linux 2", "2.26")
    assert py311["runtime_image"] == "public.ecr.aws/lambda/python:3.11-arm64"
    assert py311["build_image"] == "public.ecr.aws/sam/build-python3.11:latest-arm64"
    assert py311["platform_tags"][0] == "manylinux_2_26_aarch64"
    assert py311["marker_environment"]["platform_machine"] == "aarch64"
