"""`sam local invoke WorkerFunction` completes a real task in a real PostgreSQL.

End to end, unmocked: `sam build` (lambdakit builds the psycopg2 layer and the
worker package through the Makefiles), then the unmodified SAM CLI runs the
worker in a container with the layer at /opt, under SAM's Runtime Interface
Emulator, on Docker's default bridge; the worker reaches a throwaway PostgreSQL
on the host through the host's address on that bridge, claims the task, records the
result, and answers with an empty partial batch response.

The runtime image is NOT AWS's public.ecr.aws/lambda/python:3.12: it is
lambdakit's offline stand-in under that name (Debian 12 + pyenv's CPython 3.12 +
awslambdaric and boto3 from PyPI in /var/runtime, builder/docker/standin.py). So this proves the
plumbing (layer layout, sys.path, psycopg2 import and libpq, the SAM template's
environment, the network path, the worker's SQL), not the real image's glibc or
system libraries: the static audit covers those. If the official image is
present under the name it is used as is.

Network: the container gets no route to the host's loopback, so PostgreSQL also
listens on the host's bridge address (builder.docker.network.default_bridge: the
network's gateway, or docker0's address where Docker records no gateway) and
pg_hba admits the bridge's subnet; DbHost is that address.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID, uuid4

import docker
import pytest

from builder.docker.network import Bridge, default_bridge
from builder.errors import EnvironmentProblem
from builder.host import host_arch
from builder.runtimes import Target, target

# harness and pgsupport are shared with the application's tests; the function
# packages are top-level in their Lambda package, and imported the same way here.
_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(_ROOT / "tests" / "functions"), str(_ROOT / "functions")]

from harness import BIN, ROOT, run_sam  # noqa: E402
from pgsupport import Cluster, ClusterUnavailable, throwaway_cluster  # noqa: E402
from taskdb.connection import Database, Settings  # noqa: E402
from taskdb.tasks import get_task, insert_task  # noqa: E402
from worker.batch import perform_task  # noqa: E402

# `sam build` resolves from the package index (tests/conftest.py).
pytestmark = pytest.mark.network

RUNTIME = "python3.12"  # template.yaml's Globals.Function.Runtime
# template.yaml's DbName and DbUser defaults: the test leaves them as they are.
DB_NAME = DB_USER = "tasks"
DB_PASSWORD = "lambdakit-test-only"


@pytest.fixture(scope="module")
def bridge(docker_client: docker.DockerClient) -> Bridge:
    """Docker's default bridge, where `sam local invoke` puts its container."""
    try:
        return default_bridge(docker_client)
    except EnvironmentProblem as err:
        pytest.fail(f"{err.message} ({err.hint})", pytrace=False)


@pytest.fixture(scope="module")
def pg(bridge: Bridge) -> Iterator[Cluster]:
    # A password, as the README's recipe has it: the template declares an empty
    # DATABASE_URL so that `--env-vars` can pass a DSN with the password in it.
    hba = [f"host {DB_NAME} {DB_USER} {bridge.subnet} scram-sha-256"]
    try:
        with throwaway_cluster(listen_addresses=[bridge.address], hba=hba) as cluster:
            yield cluster
    except ClusterUnavailable as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture(scope="module")
def dsn(pg: Cluster) -> str:
    """The migrated `tasks` database, owned by the `tasks` role, as the worker sees it."""
    admin = Database(Settings(dsn=pg.dsn()))
    admin.execute(f"CREATE ROLE {DB_USER} LOGIN PASSWORD '{DB_PASSWORD}'")
    admin.execute(f"CREATE DATABASE {DB_NAME} OWNER {DB_USER}")
    admin.close()
    dsn = f"host=127.0.0.1 port={pg.port} user={DB_USER} dbname={DB_NAME}"
    result = subprocess.run(
        [str(BIN / "lambdakit"), "db", "migrate", "--dsn", dsn, "--dir", str(ROOT / "migrations")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return dsn


@pytest.fixture(scope="module")
def runtime(standins: list) -> Target:
    """The template's runtime on this machine's arch; its image is an official one or the stand-in."""
    return target(RUNTIME, host_arch())


@pytest.fixture(scope="module")
def sam_build(tmp_path_factory: pytest.TempPathFactory, runtime: Target) -> Path:
    build_dir = tmp_path_factory.mktemp("sam") / "build"
    # Only the worker (and its layer): the API's package plays no part here.
    # ARCH reaches the Makefiles, the parameter the template (see its comment).
    arch = runtime.arch.name
    result = run_sam(
        "build", "WorkerFunction", "--build-dir", str(build_dir), "--parameter-overrides",
        f"Architecture={arch}", env={"ARCH": arch},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return build_dir


def sqs_event(task_id: UUID) -> dict:
    """An SQS batch as Lambda delivers it (events/sqs-batch.json's shape), one record for the task."""
    sample = json.loads((ROOT / "events" / "sqs-batch.json").read_text())["Records"][0]
    return {"Records": [{**sample, "messageId": str(uuid4()), "body": json.dumps({"task_id": str(task_id)})}]}


def test_sam_local_invoke_worker_completes_a_task_in_postgresql(
    tmp_path: Path,
    bridge: Bridge,
    pg: Cluster,
    dsn: str,
    runtime: Target,
    sam_build: Path,
) -> None:
    db = Database(Settings(dsn=dsn))
    task_id = uuid4()
    payload = {"width": 640, "height": 480, "source": "s3://bucket/cat.png"}
    with db.transaction() as cur:
        assert insert_task(cur, task_id, "thumbnail", payload).status == "pending"

    event = tmp_path / "event.json"
    event.write_text(json.dumps(sqs_event(task_id)))
    env_vars = tmp_path / "env.json"
    # The README's recipe as written: the secret skipped, the DSN (password included) in DATABASE_URL.
    database_url = f"postgresql://{DB_USER}:{DB_PASSWORD}@{bridge.address}:{pg.port}/{DB_NAME}"
    env_vars.write_text(json.dumps({"WorkerFunction": {"DB_SECRET_NAME": "", "DATABASE_URL": database_url}}))
    result = run_sam(
        "local", "invoke", "WorkerFunction",
        "-t", str(sam_build / "template.yaml"), "-e", str(event), "--env-vars", str(env_vars),
        "--skip-pull-image",
        "--parameter-overrides",
        f"DbHost={bridge.address} DbSecretName=unused Architecture={runtime.arch.name}",
        cwd=tmp_path, timeout=300,
    )  # fmt: skip
    logs = f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-5000:]}"
    assert result.returncode == 0, logs

    # SAM prints the function's response as the last line of stdout; logs go to stderr.
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines, logs
    response = json.loads(lines[-1])
    assert response == {"batchItemFailures": []}, logs

    task = get_task(db, task_id)
    db.close()
    assert task is not None
    assert (task.status, task.result, task.error, task.attempts) == (
        "completed",
        perform_task("thumbnail", payload),
        None,
        1,
    ), logs
