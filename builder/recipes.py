"""Where a layer's requirements come from, and the built-in recipes.

`build-layer NAME` takes its requirements from the first of: `-r FILE`; `-p SPEC...` (a
requirements text made of the specs); the project's `layers/NAME/requirements.txt`; the
built-in recipe NAME (`builder/data/recipes/NAME.txt`, pinned to releases proven to load on
every runtime and architecture). A project's file overrides a built-in recipe of its name.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from packaging.requirements import InvalidRequirement, Requirement

from builder import DATA_DIR
from builder.errors import UsageError
from builder.requirements import read_requirements
from builder.store import LAYER_NAME, check_layer_name

RECIPES_DIR = DATA_DIR / "recipes"
RECIPE_SUFFIX = ".txt"
BUILT_IN = "built-in"
# A project's layers: layers/NAME/requirements.txt, as this repository's own layers/psycopg2.
PROJECT_LAYERS = "layers"
REQUIREMENTS_FILE = "requirements.txt"

Origin = Literal["file", "packages", "project", "built-in"]


@dataclass(frozen=True)
class Recipe:
    name: str
    path: Path
    source: str  # "built-in", or the project's requirements file

    @property
    def text(self) -> str:
        return self.path.read_text()

    def requirement_lines(self) -> tuple[str, ...]:
        """Its requirement lines (pins), without comments or options."""
        return read_requirements(self.path).requirements


def builtin_recipes() -> list[Recipe]:
    return [
        Recipe(name=path.stem, path=path, source=BUILT_IN)
        for path in sorted(RECIPES_DIR.glob(f"*{RECIPE_SUFFIX}"))
    ]


def find_builtin(name: str) -> Recipe | None:
    return next((recipe for recipe in builtin_recipes() if recipe.name == name), None)


def project_file(project: Path, name: str) -> Path:
    return project / PROJECT_LAYERS / name / REQUIREMENTS_FILE


def project_recipes(project: Path) -> list[Recipe]:
    """The project's layers/NAME/requirements.txt files; a folder whose name is not a layer name
    is left out, since `build-layer` refuses that name."""
    found = sorted((project / PROJECT_LAYERS).glob(f"*/{REQUIREMENTS_FILE}"))
    return [
        Recipe(name=path.parent.name, path=path, source=str(path))
        for path in found
        if LAYER_NAME.fullmatch(path.parent.name) and path.is_file()
    ]


@dataclass(frozen=True, kw_only=True)
class RequirementsSource:
    origin: Origin
    description: str  # what the user is told: "built-in recipe psycopg2", "-p numpy, pydantic>=2"
    path: Path | None  # the file read; None for -p, whose text is written to a file only to build
    packages: tuple[str, ...] = ()  # -p's specs, each a checked PEP 508 requirement

    @property
    def packages_text(self) -> str:
        return "".join(f"{spec}\n" for spec in self.packages)

    @contextmanager
    def file(self) -> Iterator[Path]:
        """The requirements file to build from. For -p, a temporary file holding only the specs:
        the cache key is made of the text, so the same specs are up to date wherever it is."""
        if self.path is not None:
            yield self.path
            return
        with tempfile.TemporaryDirectory(prefix="lambdakit-packages-") as folder:
            path = Path(folder) / REQUIREMENTS_FILE
            path.write_text(self.packages_text)
            yield path

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.origin,
            "description": self.description,
            "path": str(self.path) if self.path is not None else None,
            "packages": list(self.packages),
        }


def requirements_for(
    name: str, *, requirements: Path | None, packages: tuple[str, ...], project: Path
) -> RequirementsSource:
    """Where `build-layer NAME` takes its requirements from: -r FILE, else -p SPEC..., else the
    project's layers/NAME/requirements.txt, else the built-in recipe NAME."""
    check_layer_name(name)
    if requirements is not None and packages:
        raise UsageError(
            "-r and -p both give the requirements",
            hint="pass either -r FILE or -p SPEC (repeatable), not both",
        )
    if requirements is not None:
        if not requirements.is_file():
            raise UsageError(
                f"requirements file {requirements} does not exist",
                hint=f"pass an existing file, or leave -r out to use {project_file(project, name)} "
                "or a built-in recipe",
            )
        return RequirementsSource(origin="file", description=str(requirements), path=requirements)
    if packages:
        specs = tuple(_checked_spec(spec) for spec in packages)
        return RequirementsSource(
            origin="packages", description=f"-p {', '.join(specs)}", path=None, packages=specs
        )
    in_project = project_file(project, name)
    if in_project.is_file():
        return RequirementsSource(origin="project", description=str(in_project), path=in_project)
    if (recipe := find_builtin(name)) is not None:
        return RequirementsSource(origin="built-in", description=f"built-in recipe {name}", path=recipe.path)
    builtins = ", ".join(recipe.name for recipe in builtin_recipes())
    raise UsageError(
        f"no requirements for the layer {name!r}: no -r FILE or -p SPEC was given, {in_project} "
        f"does not exist, and no built-in recipe has that name (built-in: {builtins})",
        hint=f"pass -p SPEC (repeatable) or -r FILE, create {in_project}, "
        "or see `lambdakit layers` for the layers it knows",
    )


def _checked_spec(spec: str) -> str:
    """A -p value as one requirement line: a PEP 508 requirement, never an option or a second line."""
    # A requirements file would read a line break as a new line (another -r, an index option)
    # and a tab or other control character as whatever its parser makes of it.
    if not spec.isprintable():
        raise UsageError(
            f"-p {spec!r} holds a line break or a control character",
            hint="give one requirement per -p, e.g. -p numpy -p 'pydantic>=2'",
        )
    try:
        requirement = Requirement(spec)
    except InvalidRequirement as err:
        raise UsageError(
            f"-p {spec!r} is not a requirement: {err}",
            hint="give a name with an optional version, e.g. -p numpy or -p 'pydantic>=2'; "
            "options (-e, --index-url, --hash) go in a file passed with -r",
        ) from err
    return str(requirement)
