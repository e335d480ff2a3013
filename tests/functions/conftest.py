"""Real components for the application's tests: PostgreSQL, an SQS endpoint, the API over HTTP.

- PostgreSQL: one throwaway cluster for the session (pgsupport.py), schema
  applied by `lambdakit db`'s own code, the tasks table emptied before each test.
- SQS: moto in server mode on a loopback port; the code under test uses boto3
  exactly as in AWS, pointed there only by AWS_ENDPOINT_URL. State is reset
  before each test, and the queues are created with the template's redrive policy.
- The API: served by uvicorn on a loopback port, in a thread of this process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import psycopg2
import pytest
import uvicorn

# The function packages are top-level in their Lambda package (/var/task/api,
# /var/task/worker, /var/task/taskdb); tests import them the same way.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "functions"))

from api.app import create_app
from api.queue import SqsTaskQueue
from harness import MAX_RECEIVE_COUNT, REGION, ROOT, Poller, Queues
from pgsupport import Cluster, ClusterUnavailable, CountingConnection, free_port, throwaway_cluster
from taskdb.connection import Database, Settings

from builder.app.db import apply, discover

# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def pg() -> Iterator[Cluster]:
    try:
        with throwaway_cluster() as cluster:
            yield cluster
    except ClusterUnavailable as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture(scope="session")
def migrated_dsn(pg: Cluster) -> str:
    dsn = pg.create_database("tasks")
    conn = psycopg2.connect(dsn)
    try:
        apply(conn, discover(ROOT / "migrations"))
    finally:
        conn.close()
    return dsn


@pytest.fixture
def dsn(pg: Cluster, migrated_dsn: str) -> str:
    """The migrated database with no tasks (and the server up, whatever a test did to it)."""
    if not (pg.data_dir / "postmaster.pid").exists():
        pg.start()
    admin = Database(Settings(dsn=migrated_dsn))
    admin.execute("TRUNCATE tasks")
    admin.close()
    return migrated_dsn


@pytest.fixture
def db(dsn: str) -> Iterator[Database]:
    """A Database whose connection counts round trips (db.connection.round_trips)."""
    database = Database(Settings(dsn=dsn), connection_factory=CountingConnection)
    yield database
    database.close()


# ---------------------------------------------------------------------- SQS


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{endpoint}/moto-api/", server)
        with pytest.MonkeyPatch.context() as env:
            env.setenv("AWS_ENDPOINT_URL", endpoint)
            env.setenv("AWS_DEFAULT_REGION", REGION)
            env.setenv("AWS_ACCESS_KEY_ID", "testing")
            env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
            for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
                env.delenv(name, raising=False)
            yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


def _wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer") from None
            time.sleep(0.05)


@pytest.fixture
def sqs(moto_endpoint: str) -> Any:
    urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")).close()
    return boto3.client("sqs")


@pytest.fixture
def queues(sqs: Any) -> Queues:
    """The task queue and its dead-letter queue, configured as in template.yaml.

    The visibility timeout is the one exception: a short one, so that a record
    the worker reported as failed comes back within the test.
    """
    dlq_url = sqs.create_queue(QueueName="tasks-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
    url = sqs.create_queue(
        QueueName="tasks",
        Attributes={"VisibilityTimeout": "1", "RedrivePolicy": json.dumps(redrive)},
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return Queues(url=url, arn=arn, dlq_url=dlq_url)


@pytest.fixture
def poller(sqs: Any, queues: Queues) -> Poller:
    return Poller(sqs, queues)


# ---------------------------------------------------------------------- API


@pytest.fixture
def api_url(db: Database, queues: Queues) -> Iterator[str]:
    """The API with the test database and queue, served by uvicorn over real HTTP."""
    port = free_port()
    config = uvicorn.Config(
        create_app(db, SqsTaskQueue(queues.url)), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch, dsn: str, queues: Queues) -> pytest.MonkeyPatch:
    """The environment template.yaml gives the functions, pointing at the test services.

    The entry-point modules read it at import (cold start), so they are
    imported afresh by each test that uses this fixture.
    """
    monkeypatch.setenv("DATABASE_URL", dsn)
    monkeypatch.setenv("TASK_QUEUE_URL", queues.url)
    monkeypatch.setenv("TASK_LEASE_SECONDS", "30")
    for module in ("api.main", "worker.handler"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    return monkeypatch
