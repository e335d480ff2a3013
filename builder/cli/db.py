"""`lambdakit db migrate`: the application's SQL migrations, applied once each."""

from __future__ import annotations

from pathlib import Path

import click

from builder.app.db import apply, connect, discover
from builder.cli.render import user_errors


@click.group()
def db() -> None:
    """The application's PostgreSQL schema."""


@db.command()
@click.option(
    "--dsn",
    envvar="DATABASE_URL",
    default="",
    help="libpq connection string or URL [env: DATABASE_URL; else the PG* variables]",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("migrations"),
    show_default=True,
    help="directory of NNNN_description.sql files",
)
@click.option(
    "--connect-timeout",
    envvar="PGCONNECT_TIMEOUT",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="seconds to wait for the server [env: PGCONNECT_TIMEOUT]",
)
def migrate(dsn: str, directory: Path, connect_timeout: int) -> None:
    """Apply the migrations the database does not have yet (safe to run again)."""
    with user_errors(json_output=False):
        migrations = discover(directory)
        conn = connect(dsn, connect_timeout)
        try:
            result = apply(conn, migrations)
        finally:
            conn.close()
    for migration in result.applied:
        click.echo(f"applied {migration.name}")
    click.echo(f"{len(result.applied)} applied, {result.already_applied} already applied")
