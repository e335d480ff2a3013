"""`lambdakit images list` and `build-standins`, run as the real command against the real engine.

What the README promises: `images list` shows which images are official and which are
stand-ins (label org.lambdakit.standin=true), and `build-standins` never replaces an
official image already present. An "official" image here is a tiny image built by the
test and tagged with an official name but carrying no stand-in label: that is all that
tells an official image from a stand-in.
"""

from __future__ import annotations

import json
import subprocess
import sys

import docker
import docker.errors
import pytest
from lookalike import LOOKALIKE, LOOKALIKE_KIND, TEST_LABEL, Lookalike

from builder.docker import standin
from builder.docker.container import STANDIN_LABEL
from builder.errors import EXIT_OK
from builder.host import host_arch
from builder.runtimes import all_targets, target


def _lambdakit(*args: str) -> subprocess.CompletedProcess[str]:
    # The real entry point (builder.cli.main.main), as `lambdakit` runs it, with this test's interpreter.
    return subprocess.run(
        [sys.executable, "-m", "builder", *args], capture_output=True, text=True, timeout=300
    )


def _list_rows(output: str) -> dict[str, tuple[str, str]]:
    """`images list` text: image name -> (state, the rest of the line)."""
    rows = {}
    for line in output.splitlines():
        state, image, *rest = line.split(None, 2)
        assert image not in rows, f"{image} listed twice"
        rows[image] = (state, rest[0] if rest else "")
    return rows


def _docker_state(client: docker.DockerClient, name: str) -> tuple[str, dict[str, str]]:
    """What the engine itself says about a name, read without lambdakit's code."""
    try:
        labels = client.images.get(name).labels or {}
    except docker.errors.ImageNotFound:
        return "missing", {}
    return ("stand-in" if labels.get(STANDIN_LABEL) == "true" else "official"), labels


def test_images_list_labels_every_catalogue_image_official_standin_or_missing_as_the_engine_has_it(
    docker_client: docker.DockerClient,
    standins: list[standin.Outcome],
    official_lookalike: Lookalike,
) -> None:
    proc = _lambdakit("images", "list")
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    rows = _list_rows(proc.stdout)
    # Every runtime and build image of the catalogue, once each.
    expected_names = {standin.image_name(t, kind) for t in all_targets() for kind in standin.KINDS}
    assert set(rows) == expected_names
    for name, (state, detail) in rows.items():
        engine_state, labels = _docker_state(docker_client, name)
        assert state == engine_state, f"{name}: listed {state}, the engine has {engine_state}"
        if state == "stand-in":
            # The stand-in's own description: its interpreter and the OS it really runs.
            python, os_facts = labels[f"{STANDIN_LABEL}.python"], labels[f"{STANDIN_LABEL}.os"]
            assert detail == f"({python}; {os_facts})", name
        else:
            assert detail == "", name

    # The look-alike: an official name without the label is official, with no stand-in description.
    assert rows[official_lookalike.name] == ("official", "")
    # The stand-ins the docker conftest built (or found cached) are listed as such.
    built_here = [o.image for o in standins if o.status in ("built", "cached")]
    assert built_here, "the conftest built no stand-in: nothing here would be a stand-in"
    for name in built_here:
        assert rows[name][0] == "stand-in", name
    py312 = target("python3.12", host_arch()).runtime_image
    if py312 in built_here:
        state, detail = rows[py312]
        assert detail.startswith("(CPython 3.12.") and detail.endswith("; Debian 12 (bookworm), glibc 2.36)")


def test_images_list_json_marks_standins_with_their_facts_and_the_lookalike_as_official(
    docker_client: docker.DockerClient, standins: list[standin.Outcome], official_lookalike: Lookalike
) -> None:
    proc = _lambdakit("images", "list", "--json")
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    document = json.loads(proc.stdout)
    assert document["schema"] == 1
    rows = {row["image"]: row for row in document["images"]}
    assert len(rows) == len(document["images"]) == len(all_targets()) * len(standin.KINDS)
    for name, row in rows.items():
        engine_state, labels = _docker_state(docker_client, name)
        assert (row["present"], row["standin"]) == (engine_state != "missing", engine_state == "stand-in"), (
            name
        )
        if row["standin"]:
            prefix = STANDIN_LABEL + "."
            facts = {k.removeprefix(prefix): v for k, v in labels.items() if k.startswith(prefix)}
            assert row["standin_facts"] == facts and row["standin_facts"]["fakes"] == name
        else:
            assert row["standin_facts"] == {}, name

    lookalike = rows[official_lookalike.name]
    assert (lookalike["present"], lookalike["standin"], lookalike["standin_facts"]) == (True, False, {})
    assert (lookalike["runtime"], lookalike["arch"], lookalike["kind"]) == (
        LOOKALIKE.runtime,
        LOOKALIKE.arch.name,
        LOOKALIKE_KIND,
    )
    py312 = target("python3.12", host_arch()).runtime_image
    if py312 in {o.image for o in standins if o.status in ("built", "cached")}:
        row = rows[py312]
        assert (row["present"], row["standin"], row["kind"], row["runtime"]) == (
            True,
            True,
            "runtime",
            "python3.12",
        )
        assert row["standin_facts"]["os"] == "Debian 12 (bookworm), glibc 2.36"
        assert row["standin_facts"]["real-os"] == "Amazon Linux 2023, glibc 2.34"
        assert row["standin_facts"]["python"].startswith("CPython 3.12.")


def test_build_standins_skips_an_official_image_and_leaves_it_tagged(
    docker_client: docker.DockerClient, official_lookalike: Lookalike
) -> None:
    # This machine could build that stand-in, so a skip can only be the official-image rule.
    buildable, unbuildable = standin.plan([LOOKALIKE.runtime], [LOOKALIKE_KIND], [LOOKALIKE.arch.name])
    if unbuildable:
        pytest.skip(f"{official_lookalike.name} cannot be built here anyway: {unbuildable[0].detail}")
    assert [s.image for s in buildable] == [official_lookalike.name]

    build = ["images", "build-standins", "--runtime", LOOKALIKE.runtime, "--arch", LOOKALIKE.arch.name,
             "--kind", LOOKALIKE_KIND]  # fmt: skip
    proc = _lambdakit(*build)
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [f"skipped  {official_lookalike.name}  the official image is present"]
    # Still the same image under that name: not rebuilt, not retagged, not removed.
    assert docker_client.images.get(official_lookalike.name).id == official_lookalike.image_id
    assert docker_client.images.get(official_lookalike.image_id).labels == {TEST_LABEL: "official-lookalike"}

    # --force rebuilds stand-ins, never an official image.
    proc = _lambdakit(*build, "--force")
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [f"skipped  {official_lookalike.name}  the official image is present"]
    assert docker_client.images.get(official_lookalike.name).id == official_lookalike.image_id
