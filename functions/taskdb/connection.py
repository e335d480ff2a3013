"""One PostgreSQL connection per Lambda sandbox, reused across warm invocations.

Where the connection comes from, in order: DATABASE_URL (a libpq URL or
key=value string), then the PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE
variables that libpq reads itself; the JSON secret named by DB_SECRET_NAME
(Secrets Manager, the RDS format: host, port, username, password, dbname)
overrides any of them, so the password never sits in the function's
configuration.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, TypeVar

import boto3
import psycopg2
import psycopg2.extensions
import psycopg2.extras

T = TypeVar("T")
Params = Sequence[Any] | Mapping[str, Any] | None

# UUIDs and uuid[] arrays go both ways as uuid.UUID.
psycopg2.extras.register_uuid()

# RDS secret keys -> libpq keywords.
_SECRET_KEYS = {
    "host": "host",
    "port": "port",
    "username": "user",
    "password": "password",
    "dbname": "dbname",
}


@dataclass(frozen=True, kw_only=True)
class Settings:
    dsn: str = ""
    secret_name: str | None = None
    connect_timeout_s: int = 5
    # Shorter than the functions' timeouts, so a stuck query fails the request
    # or the batch cleanly instead of Lambda killing the sandbox mid-transaction.
    statement_timeout_ms: int = 5000
    # A sandbox frozen or killed inside a transaction would otherwise hold its
    # locks until TCP notices; the server ends such sessions itself.
    idle_in_transaction_timeout_ms: int = 10000
    application_name: str = "lambdakit-tasks"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        return cls(
            dsn=environ.get("DATABASE_URL", ""),
            secret_name=environ.get("DB_SECRET_NAME") or None,
            connect_timeout_s=int(environ.get("DB_CONNECT_TIMEOUT", "5")),
            statement_timeout_ms=int(environ.get("DB_STATEMENT_TIMEOUT_MS", "5000")),
        )


def read_secret(name: str) -> dict[str, str]:
    """The libpq keywords held in a Secrets Manager secret in the RDS JSON format."""
    value = boto3.client("secretsmanager").get_secret_value(SecretId=name)["SecretString"]
    data = json.loads(value)
    return {keyword: str(data[key]) for key, keyword in _SECRET_KEYS.items() if key in data}


def _connection_lost(conn: psycopg2.extensions.connection, err: psycopg2.Error) -> bool:
    return isinstance(err, psycopg2.OperationalError | psycopg2.InterfaceError) and bool(conn.closed)


class Database:
    """A lazily opened autocommit connection, replaced when found dead.

    Autocommit makes a single statement one round trip (psycopg2 would send a
    separate BEGIN first); transaction() issues BEGIN and COMMIT explicitly.
    The lock serialises users of the one connection when uvicorn runs the
    API's handlers on several threads; in Lambda there is one caller anyway.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        secret_reader: Callable[[str], dict[str, str]] = read_secret,
        connection_factory: type[psycopg2.extensions.connection] | None = None,
    ) -> None:
        self._settings = settings
        self._read_secret = secret_reader
        self._connection_factory = connection_factory
        self._secret: dict[str, str] | None = None
        self._conn: psycopg2.extensions.connection | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Database:
        return cls(Settings.from_env(environ))

    @property
    def connection(self) -> psycopg2.extensions.connection | None:
        """The current connection, if any (for tests and measurements)."""
        return self._conn

    def execute(self, sql: str, params: Params = None) -> list[tuple[Any, ...]]:
        """Run one statement, committed on its own, and return its rows.

        If the connection turns out to be dead (the server restarted, a proxy
        dropped it while the sandbox was frozen) the statement is sent once more
        on a new one, so only give statements here that are safe to repeat.
        """

        def run(conn: psycopg2.extensions.connection) -> list[tuple[Any, ...]]:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description is not None else []

        with self._lock:
            return self._with_connection(run)

    @contextmanager
    def transaction(self) -> Iterator[psycopg2.extensions.cursor]:
        """Statements on the cursor form one transaction, committed when the block ends.

        Only BEGIN is retried on a dead connection: once the block has run a
        statement, a lost connection is raised (the server rolls back).
        """
        with self._lock:
            conn = self._with_connection(_begin)
            try:
                with conn.cursor() as cur:
                    yield cur
                    cur.execute("COMMIT")
            except BaseException:
                if not conn.closed:
                    with suppress(psycopg2.Error), conn.cursor() as cur:
                        cur.execute("ROLLBACK")
                raise

    def ping(self) -> None:
        self.execute("SELECT 1")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _with_connection(self, action: Callable[[psycopg2.extensions.connection], T]) -> T:
        conn = self._conn
        if conn is not None and not conn.closed:
            try:
                return action(conn)
            except psycopg2.Error as err:
                if not _connection_lost(conn, err):
                    raise
        self._conn = None
        self._conn = self._connect()
        return action(self._conn)

    def _connect(self) -> psycopg2.extensions.connection:
        settings = self._settings
        keywords: dict[str, str] = {}
        if settings.secret_name:
            if self._secret is None:
                self._secret = self._read_secret(settings.secret_name)
            keywords.update(self._secret)
        options = (
            f"-c statement_timeout={settings.statement_timeout_ms}"
            f" -c idle_in_transaction_session_timeout={settings.idle_in_transaction_timeout_ms}"
        )
        try:
            conn = psycopg2.connect(
                settings.dsn,
                connection_factory=self._connection_factory,
                connect_timeout=settings.connect_timeout_s,
                options=options,
                application_name=settings.application_name,
                **keywords,
            )
        except psycopg2.OperationalError:
            # A rotated password shows up as an authentication failure: read the
            # secret again on the next attempt instead of retrying a stale one.
            self._secret = None
            raise
        conn.autocommit = True
        return conn


def _begin(conn: psycopg2.extensions.connection) -> psycopg2.extensions.connection:
    with conn.cursor() as cur:
        cur.execute("BEGIN")
    return conn
