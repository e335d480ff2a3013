"""Where build-layer's requirements come from: -r, -p, the project's layers/NAME, a built-in recipe.

The unit tests call builder.recipes directly; the rest run `lambdakit` as a process in a
folder of their own, as a user would in a project that is not this repository.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from builder.errors import UsageError
from builder.recipes import (
    RECIPES_DIR,
    builtin_recipes,
    find_builtin,
    project_recipes,
    requirements_for,
)
from builder.requirements import read_requirements

REPOSITORY = Path(__file__).resolve().parents[1]
LAMBDAKIT = [sys.executable, "-m", "builder"]
# Resolved from the index; the local CPython 3.12 proves the import without Docker.
BUILD = ["--runtime", "python3.12", "--backend", "uv", "--import-check", "interpreter", "--out", "out"]
SIX = "six==1.16.0"
HOSTILE_SPECS = [
    "x\n-r /etc/passwd",  # a second line: another requirements file
    "numpy\n",
    "six\t==1.16.0",
    "-e .",  # a build from source
    "--index-url=http://127.0.0.1:9/simple",  # another index for everything
    "six==1.16.0 --hash=sha256:00",
    "numpy # comment",
    "numpy\\",  # a continuation into the next line
    "",
    "six==1.16.0\x1b[2J",  # a terminal escape (argv cannot carry a NUL byte)
]


def _lambdakit(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LAMBDAKIT, *argv], cwd=cwd, capture_output=True, text=True, timeout=600)


def _document(process: subprocess.CompletedProcess[str]) -> dict:
    document: dict = json.loads(process.stdout)
    return document


def _project_layer(project: Path, name: str, *lines: str) -> Path:
    path = project / "layers" / name / "requirements.txt"
    path.parent.mkdir(parents=True)
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


# requirements_for, without a process


def test_this_repository_s_layer_and_the_built_in_psycopg2_recipe_pin_the_same() -> None:
    """This repository's own layer is the recipe's first user: they may not drift apart."""
    own = read_requirements(REPOSITORY / "layers" / "psycopg2" / "requirements.txt").requirements
    recipe = find_builtin("psycopg2")
    assert recipe is not None
    assert recipe.requirement_lines() == own == ("psycopg2-binary==2.9.11",)


def test_every_built_in_recipe_is_pinned_and_says_why() -> None:
    recipes = builtin_recipes()
    assert [r.name for r in recipes] == ["psycopg", "psycopg2"]
    for recipe in recipes:
        assert recipe.source == "built-in"
        assert recipe.text.startswith("#"), f"{recipe.path}: the comment says why these pins"
        for line in recipe.requirement_lines():
            assert "==" in line, f"{recipe.path}: {line} is not pinned"
    psycopg = find_builtin("psycopg")
    assert psycopg is not None
    assert psycopg.requirement_lines() == ("psycopg[binary]==3.2.13",)
    assert find_builtin("numpy") is None


def test_the_built_in_recipe_is_used_where_the_project_has_no_file(tmp_path: Path) -> None:
    source = requirements_for("psycopg2", requirements=None, packages=(), project=tmp_path)
    assert (source.origin, source.path) == ("built-in", RECIPES_DIR / "psycopg2.txt")
    assert source.description == "built-in recipe psycopg2"
    # A folder without requirements.txt (a Makefile that calls lambdakit) does not hide the recipe.
    (tmp_path / "layers" / "psycopg2").mkdir(parents=True)
    assert requirements_for("psycopg2", requirements=None, packages=(), project=tmp_path).origin == "built-in"


def test_the_project_s_file_overrides_the_built_in_recipe(tmp_path: Path) -> None:
    own = _project_layer(tmp_path, "psycopg2", "psycopg2-binary==2.9.10")
    source = requirements_for("psycopg2", requirements=None, packages=(), project=tmp_path)
    assert (source.origin, source.path, source.description) == ("project", own, str(own))


def test_r_comes_first_and_must_exist(tmp_path: Path) -> None:
    _project_layer(tmp_path, "psycopg2", "six")
    given = tmp_path / "mine.txt"
    given.write_text("six\n")
    source = requirements_for("psycopg2", requirements=given, packages=(), project=tmp_path)
    assert (source.origin, source.path) == ("file", given)
    missing = tmp_path / "missing.txt"
    with pytest.raises(UsageError, match=re.escape(f"{missing} does not exist")):
        requirements_for("psycopg2", requirements=missing, packages=(), project=tmp_path)


def test_r_and_p_together_are_refused(tmp_path: Path) -> None:
    given = tmp_path / "mine.txt"
    given.write_text("six\n")
    with pytest.raises(UsageError, match="-r and -p") as refused:
        requirements_for("deps", requirements=given, packages=("six",), project=tmp_path)
    assert "not both" in refused.value.hint


def test_p_makes_a_requirements_text_that_exists_only_while_building(tmp_path: Path) -> None:
    _project_layer(tmp_path, "psycopg2", "six")
    source = requirements_for(
        "psycopg2", requirements=None, packages=("numpy", "pydantic >= 2"), project=tmp_path
    )
    assert (source.origin, source.path, source.packages) == ("packages", None, ("numpy", "pydantic>=2"))
    assert source.description == "-p numpy, pydantic>=2"
    with source.file() as written:
        assert written.read_text() == "numpy\npydantic>=2\n"
        assert read_requirements(written).requirements == ("numpy", "pydantic>=2")
    assert not written.exists()


@pytest.mark.parametrize("spec", HOSTILE_SPECS)
def test_a_p_value_that_is_not_one_requirement_is_refused(tmp_path: Path, spec: str) -> None:
    with pytest.raises(UsageError) as refused:
        requirements_for("deps", requirements=None, packages=("six", spec), project=tmp_path)
    assert repr(spec) in refused.value.message


def test_an_unknown_layer_names_what_was_tried_and_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as refused:
        requirements_for("mystery", requirements=None, packages=(), project=tmp_path)
    message, hint = refused.value.message, refused.value.hint
    assert "'mystery'" in message
    assert str(tmp_path / "layers" / "mystery" / "requirements.txt") in message
    assert "built-in: psycopg, psycopg2" in message
    assert all(what in hint for what in ("-p SPEC", "-r FILE", "lambdakit layers"))


@pytest.mark.parametrize("name", ["../etc", "a/b", "", ".hidden", "x" * 65])
def test_a_name_that_is_a_path_is_refused_before_anything_is_looked_up(tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError, match="is not a layer name"):
        requirements_for(name, requirements=None, packages=(), project=tmp_path)


def test_project_layers_are_the_folders_with_a_requirements_file_and_a_layer_name(tmp_path: Path) -> None:
    _project_layer(tmp_path, "deps", "six")
    _project_layer(tmp_path, "bad name", "six")  # build-layer refuses that name
    (tmp_path / "layers" / "empty").mkdir()
    (tmp_path / "layers" / "odd" / "requirements.txt").mkdir(parents=True)  # a folder, not a file
    assert [(r.name, r.source) for r in project_recipes(tmp_path)] == [
        ("deps", str(tmp_path / "layers" / "deps" / "requirements.txt"))
    ]


# The command line, in a folder that is not this repository


@pytest.mark.network
def test_build_layer_psycopg2_in_an_empty_folder_uses_the_built_in_recipe(tmp_path: Path) -> None:
    built = _lambdakit(tmp_path, "build-layer", "psycopg2", *BUILD, "--json")
    assert built.returncode == 0, built.stderr
    document = _document(built)
    assert document["requirements"]["source"] == "built-in"
    assert document["requirements"]["path"] == str(RECIPES_DIR / "psycopg2.txt")
    assert document["manifest"]["packages"] == {"psycopg2-binary": "2.9.11"}
    assert document["manifest"]["validation"]["verdict"] == "valid"
    assert document["manifest"]["validation"]["imports"]["modules"] == {"psycopg2": None}
    assert (tmp_path / "out" / "psycopg2" / "psycopg2.zip").is_file()


@pytest.mark.network
def test_a_project_layer_wins_over_the_built_in_recipe(tmp_path: Path) -> None:
    _project_layer(tmp_path, "psycopg2", SIX)
    built = _lambdakit(tmp_path, "build-layer", "psycopg2", *BUILD)
    assert built.returncode == 0, built.stderr
    assert "requirements: layers/psycopg2/requirements.txt" in built.stdout
    assert "packages: six 1.16.0" in built.stdout
    assert "psycopg2-binary" not in built.stdout


@pytest.mark.network
def test_an_ad_hoc_layer_builds_and_the_same_specs_are_up_to_date(tmp_path: Path) -> None:
    first = _lambdakit(tmp_path, "build-layer", "deps", "-p", SIX, *BUILD, "--json")
    assert first.returncode == 0, first.stderr
    document = _document(first)
    assert (document["status"], document["manifest"]["packages"]) == ("built", {"six": "1.16.0"})
    assert document["requirements"] == {
        "source": "packages",
        "description": f"-p {SIX}",
        "path": None,
        "packages": [SIX],
    }
    again = _lambdakit(tmp_path, "build-layer", "deps", "--package", SIX, *BUILD)
    assert again.returncode == 0, again.stderr
    assert "Up to date: deps" in again.stdout
    assert f"requirements: -p {SIX}" in again.stdout
    other = _lambdakit(tmp_path, "build-layer", "deps", "-p", "six==1.17.0", *BUILD, "--json")
    assert _document(other)["status"] == "built"
    assert _document(other)["manifest"]["packages"] == {"six": "1.17.0"}


@pytest.mark.network
def test_every_target_of_a_matrix_builds_the_p_specs(tmp_path: Path) -> None:
    argv = ["build-layer", "deps", "-p", SIX, "--runtime", "python3.11,python3.12", "--backend", "uv",
            "--import-check", "interpreter", "--out", "out", "--json"]  # fmt: skip
    built = _lambdakit(tmp_path, *argv)
    assert built.returncode == 0, built.stderr
    document = _document(built)
    assert document["requirements"]["source"] == "packages"
    assert [t["runtime"] for t in document["targets"]] == ["python3.11", "python3.12"]
    for target in document["targets"]:
        assert target["verdict"] == "valid"
        assert target["result"]["requirements"]["packages"] == [SIX]
        assert target["result"]["manifest"]["packages"] == {"six": "1.16.0"}


def test_r_with_p_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("six\n")
    refused = _lambdakit(tmp_path, "build-layer", "deps", "-r", "requirements.txt", "-p", "six")
    assert refused.returncode == 2
    assert "error: -r and -p both give the requirements" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_an_unknown_layer_is_a_usage_error_naming_the_built_in_recipes(tmp_path: Path) -> None:
    refused = _lambdakit(tmp_path, "build-layer", "mystery", "--json")
    assert refused.returncode == 2
    document = _document(refused)
    assert document["error"] == "UsageError"
    assert "built-in: psycopg, psycopg2" in document["message"]
    assert "lambdakit layers" in document["hint"]
    assert not (tmp_path / "build").exists()


@pytest.mark.parametrize("spec", HOSTILE_SPECS)
def test_a_hostile_p_value_is_refused_before_anything_is_written(tmp_path: Path, spec: str) -> None:
    refused = _lambdakit(tmp_path, "build-layer", "deps", f"--package={spec}", "--out", "out", "--json")
    assert refused.returncode == 2
    assert _document(refused)["error"] == "UsageError"
    assert list(tmp_path.iterdir()) == []


def test_p_without_a_layer_name_does_not_replace_the_default_layer(tmp_path: Path) -> None:
    refused = _lambdakit(tmp_path, "build-layer", "-p", SIX)
    assert refused.returncode == 2
    assert "-p needs a layer name" in refused.stderr


def test_layers_lists_the_built_in_recipes_and_the_project_s_layers(tmp_path: Path) -> None:
    _project_layer(tmp_path, "psycopg2", SIX)
    _project_layer(tmp_path, "deps", SIX)
    listed = _lambdakit(tmp_path, "layers", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {(row["name"], row["source"]): row for row in _document(listed)["layers"]}
    assert set(rows) == {
        ("deps", "layers/deps/requirements.txt"),
        ("psycopg", "built-in"),
        ("psycopg2", "built-in"),
        ("psycopg2", "layers/psycopg2/requirements.txt"),
    }
    assert rows["psycopg", "built-in"]["requirements"] == ["psycopg[binary]==3.2.13"]
    assert rows["psycopg2", "built-in"]["requirements"] == ["psycopg2-binary==2.9.11"]
    # What build-layer NAME would use: the project's psycopg2 overrides the built-in one.
    used = {key for key, row in rows.items() if row["used"]}
    assert used == set(rows) - {("psycopg2", "built-in")}
    text = _lambdakit(tmp_path, "layers")
    assert "psycopg2-binary==2.9.11  (the project's layer overrides it)" in text.stdout


def test_layers_in_an_odd_folder_lists_the_built_in_recipes(tmp_path: Path) -> None:
    (tmp_path / "layers").write_text("a file where the layers folder would be\n")
    listed = _lambdakit(tmp_path, "layers", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(row["name"], row["used"]) for row in _document(listed)["layers"]] == [
        ("psycopg", True),
        ("psycopg2", True),
    ]
    assert _lambdakit(tmp_path, "layers", "--bogus").returncode == 2
