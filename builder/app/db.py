"""`lambdakit db`: apply the application's versioned SQL migrations to PostgreSQL.

Migrations are files named NNNN_description.sql in one directory (migrations/
at the project root by default). Each runs once, in its own transaction, and is
recorded in schema_migrations with a checksum: running `migrate` again is a
no-op, and a migration edited after it was applied is reported, not skipped.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from builder.errors import EnvironmentProblem, UsageError

if TYPE_CHECKING:
    from psycopg2.extensions import connection

_FILE_NAME = re.compile(r"^(?P<version>\d{4})_[a-z0-9_]+\.sql$")

# Held for the whole run so that two migrators started together (two deploys,
# two CI jobs on one server) apply each file once; any constant works if all
# migrators use the same one.
_ADVISORY_LOCK = 0x6C6B6462

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, kw_only=True)
class Migration:
    version: int
    name: str  # the file name, e.g. 0001_create_tasks.sql
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True, kw_only=True)
class MigrateResult:
    applied: list[Migration]
    already_applied: int


def discover(directory: Path) -> list[Migration]:
    """The migrations in a directory, in version order; a misnamed .sql file is an error."""
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise UsageError(
                f"{path}: a migration file must be named NNNN_description.sql",
                hint="use four digits, then lower-case letters, digits and underscores",
            )
        version = int(match["version"])
        if version in migrations:
            raise UsageError(
                f"{path.name} and {migrations[version].name} share version {version:04d}",
                hint="give each migration its own number",
            )
        migrations[version] = Migration(version=version, name=path.name, sql=path.read_text(encoding="utf-8"))
    if not migrations:
        raise UsageError(f"no NNNN_description.sql files in {directory}", hint="pass --dir")
    return [migrations[v] for v in sorted(migrations)]


def apply(conn: connection, migrations: list[Migration]) -> MigrateResult:
    """Apply the migrations the database lacks, each with its record in one transaction."""
    import psycopg2

    conn.autocommit = False
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s)", (_ADVISORY_LOCK,))
        try:
            cur.execute(_CREATE_TABLE)
            cur.execute("SELECT version, name, checksum FROM schema_migrations")
            recorded = {version: (name, checksum) for version, name, checksum in cur.fetchall()}
            conn.commit()
            _check_unchanged(migrations, recorded)
            applied: list[Migration] = []
            for migration in migrations:
                if migration.version in recorded:
                    continue
                try:
                    cur.execute(migration.sql)
                    cur.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                    conn.commit()
                except psycopg2.Error as err:
                    conn.rollback()
                    raise UsageError(
                        f"{migration.name} failed and was rolled back: {str(err).strip()}",
                        hint="fix the SQL; the migrations before it stay applied",
                    ) from err
                applied.append(migration)
        finally:
            if not conn.closed:
                conn.rollback()
                cur.execute("SELECT pg_advisory_unlock(%s)", (_ADVISORY_LOCK,))
                conn.commit()
    return MigrateResult(applied=applied, already_applied=len(migrations) - len(applied))


def _check_unchanged(migrations: list[Migration], recorded: dict[int, tuple[str, str]]) -> None:
    for migration in migrations:
        if migration.version not in recorded:
            continue
        name, checksum = recorded[migration.version]
        if checksum != migration.checksum:
            raise UsageError(
                f"{migration.name} was changed after it was applied (as {name})",
                hint="restore the applied file and put the change in a new migration",
            )


def connect(dsn: str, connect_timeout: int) -> connection:
    try:
        import psycopg2
    except ImportError as err:
        raise EnvironmentProblem(
            "psycopg2 is not installed", hint="pip install psycopg2-binary", step="migrate"
        ) from err
    try:
        # An empty DSN lets libpq take PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE.
        return psycopg2.connect(dsn, connect_timeout=connect_timeout, application_name="lambdakit-migrate")
    except psycopg2.OperationalError as err:
        raise EnvironmentProblem(
            f"cannot connect to PostgreSQL: {str(err).strip()}",
            hint="pass --dsn, or set DATABASE_URL or PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE",
            step="migrate",
        ) from err
