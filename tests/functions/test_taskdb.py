"""The shared connection: configuration, timeouts, reconnection, secrets, transactions."""

from __future__ import annotations

import json
import socket
import time
from typing import Any
from uuid import uuid4

import boto3
import psycopg2
import psycopg2.errors
import pytest
from pgsupport import Cluster
from taskdb.connection import Database, Settings
from taskdb.tasks import get_task, insert_task


def _backend_pid(db: Database) -> int:
    return int(db.execute("SELECT pg_backend_pid()")[0][0])


def test_settings_come_from_the_environment() -> None:
    environ = {
        "DATABASE_URL": "postgresql://app@db.internal/tasks",
        "DB_SECRET_NAME": "prod/tasks/db",
        "DB_CONNECT_TIMEOUT": "3",
        "DB_STATEMENT_TIMEOUT_MS": "2500",
    }

    settings = Settings.from_env(environ)

    assert settings == Settings(
        dsn="postgresql://app@db.internal/tasks",
        secret_name="prod/tasks/db",
        connect_timeout_s=3,
        statement_timeout_ms=2500,
    )
    assert Settings.from_env({}) == Settings()


def test_the_session_gets_the_timeouts(dsn: str) -> None:
    db = Database(Settings(dsn=dsn, connect_timeout_s=4, statement_timeout_ms=1234))

    (row,) = db.execute(
        "SELECT current_setting('statement_timeout'), current_setting('idle_in_transaction_session_timeout'),"
        " current_setting('application_name')"
    )

    assert row == ("1234ms", "10s", "lambdakit-tasks")
    assert db.connection is not None
    assert db.connection.get_dsn_parameters()["connect_timeout"] == "4"
    db.close()


def test_a_slow_statement_is_cancelled_and_the_connection_survives(dsn: str) -> None:
    db = Database(Settings(dsn=dsn, statement_timeout_ms=200))
    pid = _backend_pid(db)
    started = time.monotonic()

    with pytest.raises(psycopg2.errors.QueryCanceled):
        db.execute("SELECT pg_sleep(60)")

    assert time.monotonic() - started < 30  # the 200 ms timeout, not the 60 s sleep, ended it; generous
    assert _backend_pid(db) == pid
    db.close()


def test_the_connection_is_reused_across_calls(db: Database) -> None:
    assert _backend_pid(db) == _backend_pid(db)


def test_a_dead_connection_is_replaced_transparently(db: Database, pg: Cluster) -> None:
    pid = _backend_pid(db)
    assert pg.terminate_backends("tasks") == 1

    assert _backend_pid(db) != pid


def test_a_transaction_starts_on_a_new_connection_when_the_old_one_died(db: Database, pg: Cluster) -> None:
    db.ping()
    pg.terminate_backends("tasks")
    task_id = uuid4()

    with db.transaction() as cur:
        insert_task(cur, task_id, "after a failover", {})

    assert get_task(db, task_id) is not None


def test_a_transaction_rolls_back_when_the_block_raises(db: Database) -> None:
    task_id = uuid4()

    with pytest.raises(RuntimeError), db.transaction() as cur:
        insert_task(cur, task_id, "never committed", {})
        raise RuntimeError("the queue refused the message")

    assert get_task(db, task_id) is None


def test_losing_the_connection_inside_a_transaction_is_raised_not_retried(db: Database, pg: Cluster) -> None:
    task_id = uuid4()

    with pytest.raises(psycopg2.OperationalError), db.transaction() as cur:
        insert_task(cur, task_id, "lost", {})
        pg.terminate_backends("tasks")
        cur.execute("SELECT 1")

    assert get_task(db, task_id) is None  # and the next call reconnected


def test_a_refused_connection_fails_at_once_and_reconnects_later(pg: Cluster, migrated_dsn: str) -> None:
    pg.stop()
    db = Database(Settings(dsn=migrated_dsn, connect_timeout_s=2))

    with pytest.raises(psycopg2.OperationalError):
        db.ping()

    pg.start()
    db.ping()
    db.close()


def test_a_server_that_never_answers_fails_within_the_connect_timeout() -> None:
    """A listener on loopback that accepts and stays silent: only the connect timeout ends the wait."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        db = Database(Settings(dsn=f"host=127.0.0.1 port={port} dbname=tasks user=x", connect_timeout_s=2))
        started = time.monotonic()
        with pytest.raises(psycopg2.OperationalError, match="timeout"):
            db.ping()
        waited = time.monotonic() - started
    assert 1.5 <= waited < 20  # the timeout (2 s) is what ended it; a generous upper bound


def _secret(pg: Cluster, **overrides: Any) -> str:
    value = {"host": "127.0.0.1", "port": pg.port, "username": "postgres", "password": "x", "dbname": "tasks"}
    return json.dumps({**value, **overrides})


def test_connection_details_come_from_the_secret(
    pg: Cluster, dsn: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD"):
        monkeypatch.delenv(name, raising=False)
    boto3.client("secretsmanager").create_secret(Name="tasks/db-from-secret", SecretString=_secret(pg))

    db = Database.from_env({"DB_SECRET_NAME": "tasks/db-from-secret"})

    assert db.execute("SELECT current_database(), current_user") == [("tasks", "postgres")]
    db.close()


def test_the_secret_is_read_again_after_a_failed_connection(
    pg: Cluster, dsn: str, moto_endpoint: str
) -> None:
    secrets = boto3.client("secretsmanager")
    secrets.create_secret(Name="tasks/db-rotated", SecretString=_secret(pg, dbname="no_such_database"))
    db = Database(Settings(secret_name="tasks/db-rotated"))
    with pytest.raises(psycopg2.OperationalError):
        db.ping()

    secrets.put_secret_value(SecretId="tasks/db-rotated", SecretString=_secret(pg))

    db.ping()
    db.close()
