"""`layers`: the built-in recipes and this project's layers, and which one `build-layer NAME` uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from builder.cli.options import JSON_OPTION
from builder.cli.render import emit_json, user_errors
from builder.recipes import BUILT_IN, Recipe, builtin_recipes, project_recipes, requirements_for


@click.command("layers")
@JSON_OPTION
def layers_command(json_output: bool) -> None:
    """List the layers `build-layer NAME` can build without -r or -p.

    \b
    Those are the built-in recipes (pinned to releases proven to load on every
    runtime and architecture) and this folder's layers/NAME/requirements.txt.
    A project's layer overrides the built-in recipe of its name: the one
    build-layer uses is marked "*" (true in "used" under --json).

    \b
    Examples:
      lambdakit layers
      lambdakit layers --json
      lambdakit build-layer psycopg        # build one of them
    """
    project = Path(".")
    with user_errors(json_output):
        rows = [_row(recipe, project) for recipe in [*builtin_recipes(), *project_recipes(project)]]
    rows.sort(key=lambda row: (row["name"], row["source"] != BUILT_IN))
    if json_output:
        emit_json({"schema": 1, "layers": rows})
        return
    click.echo(f"  {'name':<20} {'source':<40} requirements")
    for row in rows:
        mark = "*" if row["used"] else " "
        overridden = "" if row["used"] else "  (the project's layer overrides it)"
        pins = ", ".join(row["requirements"]) + overridden
        click.echo(f"{mark} {row['name']:<20} {row['source']:<40} {pins}".rstrip())
    click.echo("* what `lambdakit build-layer NAME` uses (without -r or -p)")


def _row(recipe: Recipe, project: Path) -> dict[str, Any]:
    used = requirements_for(recipe.name, requirements=None, packages=(), project=project).path == recipe.path
    return {
        "name": recipe.name,
        "source": recipe.source,
        "path": str(recipe.path),
        # A project's file is the user's to read; a built-in recipe is shown, since it lives in lambdakit.
        "requirements": list(recipe.requirement_lines()) if recipe.source == BUILT_IN else [],
        "used": used,
    }
