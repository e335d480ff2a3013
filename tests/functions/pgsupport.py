"""A throwaway PostgreSQL server and a round-trip counter, for tests and bench/.

The server is a real one (initdb + pg_ctl into a temporary directory, on a free
loopback port, trust authentication); it can also listen on more addresses, with
pg_hba.conf lines admitting clients there (Lambda containers on Docker's bridge).
PostgreSQL refuses to run as root, so as root the cluster belongs to and runs as
the `postgres` user that Debian's postgresql package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions


class ClusterUnavailable(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bin_dir() -> Path:
    """PG_BIN if set, else the newest /usr/lib/postgresql/*/bin, else initdb on PATH."""
    if "PG_BIN" in os.environ:
        candidates = [os.environ["PG_BIN"]]
    else:
        candidates = sorted(
            glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
        )
        on_path = shutil.which("initdb")
        if on_path:
            candidates.append(str(Path(on_path).parent))
    for candidate in candidates:
        if (Path(candidate) / "initdb").is_file() and (Path(candidate) / "pg_ctl").is_file():
            return Path(candidate)
    raise ClusterUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or on PATH: "
        "install them (apt-get install -y postgresql) or set PG_BIN to their directory"
    )


def _run_as() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise ClusterUnavailable(
            "running as root, and PostgreSQL refuses to run as root, but there is no `postgres` user "
            "to run it as: apt-get install -y postgresql creates one"
        ) from None


@dataclass
class Cluster:
    root: Path
    port: int
    bin_dir: Path
    user: pwd.struct_passwd | None
    fsync: bool
    # Addresses besides 127.0.0.1 (always listened on: dsn() uses it).
    listen_addresses: Sequence[str] = ()
    # pg_hba.conf lines added after initdb's, which admit loopback clients only.
    hba: Sequence[str] = ()

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def _run(self, *args: str) -> None:
        extra: dict[str, Any] = {}
        if self.user is not None:
            extra = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        result = subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]], capture_output=True, text=True, check=False, **extra
        )
        if result.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise ClusterUnavailable(f"{args[0]} failed: {result.stdout}{result.stderr}{tail}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")  # fmt: skip
        if self.hba:
            with (self.data_dir / "pg_hba.conf").open("a") as conf:
                conf.write("".join(f"{line}\n" for line in self.hba))

    def start(self) -> None:
        settings = [
            f"-p {self.port}",
            f"-c listen_addresses={','.join(['127.0.0.1', *self.listen_addresses])}",
            f"-c unix_socket_directories={self.root}",
            "-c max_connections=50",
        ]
        if not self.fsync:
            # Tests do not survive power loss; skipping the flushes makes them fast.
            settings += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.root / "server.log"), "-w", "-t", "30",
                  "-o", " ".join(settings), "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    def create_database(self, name: str) -> str:
        conn = psycopg2.connect(self.dsn())
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.dsn(name)

    def terminate_backends(self, dbname: str) -> int:
        """Kill every session on the database, as a failover or an idle proxy would."""
        conn = psycopg2.connect(self.dsn())
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s",
                    (dbname,),
                )
                row = cur.fetchone()
        finally:
            conn.close()
        assert row is not None
        return int(row[0])


@contextmanager
def throwaway_cluster(
    *, fsync: bool = False, listen_addresses: Sequence[str] = (), hba: Sequence[str] = ()
) -> Iterator[Cluster]:
    bin_dir = _bin_dir()
    user = _run_as()
    root = Path(tempfile.mkdtemp(prefix="lambdakit-pg-"))
    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
    cluster = Cluster(
        root=root,
        port=free_port(),
        bin_dir=bin_dir,
        user=user,
        fsync=fsync,
        listen_addresses=listen_addresses,
        hba=hba,
    )
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        if (cluster.data_dir / "postmaster.pid").exists():
            cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


class CountingCursor(psycopg2.extensions.cursor):
    def execute(self, query: Any, vars: Any = None) -> None:
        conn = self.connection
        assert isinstance(conn, CountingConnection)
        if not conn.autocommit and conn.status == psycopg2.extensions.STATUS_READY:
            conn.round_trips += 1  # psycopg2 sends BEGIN first, and waits for it
        conn.round_trips += 1
        super().execute(query, vars)


class CountingConnection(psycopg2.extensions.connection):
    """Counts the client-server exchanges psycopg2 makes after connecting."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.round_trips = 0

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cursor_factory", CountingCursor)
        return super().cursor(*args, **kwargs)

    def commit(self) -> None:
        if self.status != psycopg2.extensions.STATUS_READY:
            self.round_trips += 1
        super().commit()

    def rollback(self) -> None:
        if self.status != psycopg2.extensions.STATUS_READY:
            self.round_trips += 1
        super().rollback()
