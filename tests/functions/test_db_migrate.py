"""`lambdakit db migrate` against a real PostgreSQL: versioned, idempotent, checked."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import psycopg2
import pytest
from click.testing import CliRunner
from harness import ROOT
from pgsupport import Cluster, free_port

from builder.app.db import MigrateResult, apply, discover
from builder.cli.db import db
from builder.errors import EnvironmentProblem, UsageError

MIGRATIONS = ROOT / "migrations"


def _tables(dsn: str) -> set[str]:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            return {row[0] for row in cur.fetchall()}
    finally:
        conn.close()


def _apply(dsn: str, directory: Path) -> MigrateResult:
    conn = psycopg2.connect(dsn)
    try:
        return apply(conn, discover(directory))
    finally:
        conn.close()


def test_migrate_applies_each_migration_once(pg: Cluster) -> None:
    dsn = pg.create_database("migrate_once")
    runner = CliRunner()

    first = runner.invoke(db, ["migrate", "--dsn", dsn, "--dir", str(MIGRATIONS)])
    second = runner.invoke(db, ["migrate", "--dir", str(MIGRATIONS)], env={"DATABASE_URL": dsn})

    assert first.exit_code == 0, first.output
    assert "applied 0001_create_tasks.sql" in first.output
    assert second.exit_code == 0, second.output
    assert second.output.strip() == "0 applied, 1 already applied"
    assert _tables(dsn) == {"tasks", "schema_migrations"}


def test_migrate_takes_the_libpq_variables_without_a_dsn(pg: Cluster) -> None:
    pg.create_database("migrate_pgenv")
    env = {
        "DATABASE_URL": None,
        "PGHOST": "127.0.0.1",
        "PGPORT": str(pg.port),
        "PGUSER": "postgres",
        "PGDATABASE": "migrate_pgenv",
    }

    result = CliRunner().invoke(db, ["migrate", "--dir", str(MIGRATIONS)], env=env)

    assert result.exit_code == 0, result.output
    assert "tasks" in _tables(pg.dsn("migrate_pgenv"))


def test_concurrent_migrators_apply_once(pg: Cluster) -> None:
    dsn = pg.create_database("migrate_race")
    results: list[MigrateResult] = []
    threads = [threading.Thread(target=lambda: results.append(_apply(dsn, MIGRATIONS))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(len(r.applied) for r in results) == [0, 0, 1]


def test_an_edited_migration_is_refused(pg: Cluster, tmp_path: Path) -> None:
    dsn = pg.create_database("migrate_edited")
    shutil.copy(MIGRATIONS / "0001_create_tasks.sql", tmp_path)
    _apply(dsn, tmp_path)
    (tmp_path / "0001_create_tasks.sql").write_text("CREATE TABLE tasks (id int);\n")

    with pytest.raises(UsageError, match="changed after it was applied"):
        _apply(dsn, tmp_path)


def test_a_failing_migration_is_rolled_back_and_the_earlier_ones_kept(pg: Cluster, tmp_path: Path) -> None:
    dsn = pg.create_database("migrate_failing")
    shutil.copy(MIGRATIONS / "0001_create_tasks.sql", tmp_path)
    (tmp_path / "0002_broken.sql").write_text(
        "CREATE TABLE half (id int);\nSELECT no_such_column FROM tasks;\n"
    )

    with pytest.raises(UsageError, match=r"0002_broken\.sql failed") as caught:
        _apply(dsn, tmp_path)

    assert "no_such_column" in caught.value.message
    assert _tables(dsn) == {"tasks", "schema_migrations"}  # no "half": 0002 was all or nothing
    (tmp_path / "0002_broken.sql").write_text("CREATE TABLE half (id int);\n")
    assert [m.name for m in _apply(dsn, tmp_path).applied] == ["0002_broken.sql"]


@pytest.mark.parametrize("name", ["1_short.sql", "0001-dash.sql", "0001_Upper.sql"])
def test_a_misnamed_migration_file_is_an_error(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("SELECT 1;\n")

    with pytest.raises(UsageError, match=r"NNNN_description\.sql"):
        discover(tmp_path)


def test_two_migrations_with_one_version_are_an_error(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;\n")
    (tmp_path / "0001_b.sql").write_text("SELECT 2;\n")

    with pytest.raises(UsageError, match="share version 0001"):
        discover(tmp_path)


def test_an_unreachable_server_is_an_environment_problem() -> None:
    dsn = f"host=127.0.0.1 port={free_port()} user=postgres"

    result = CliRunner().invoke(db, ["migrate", "--dsn", dsn, "--dir", str(MIGRATIONS)])

    assert result.exit_code == EnvironmentProblem.exit_code
    assert "error: cannot connect to PostgreSQL" in result.output
    assert "hint: pass --dsn, or set DATABASE_URL" in result.output
