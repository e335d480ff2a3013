"""The task application on a real LocalStack, deployed with `lambdakit deploy`, its Lambda code running.

Real: LocalStack 2026.3.0 on this host (CloudFormation with the SAM transform,
SQS, the Lambda service and its SQS event source mapping, Secrets Manager,
CloudWatch Logs), the SAM CLI, PostgreSQL, and the functions running in Docker
containers that LocalStack starts.

STAND-INS, because this machine cannot download them (scripts/localstack.sh
--lambda-standins, builder/app/localstack.py): LocalStack's runtime init is
lambdakit's own (builder/data/localstack-init.py, LocalStack's init contract),
and the runtime image is lambdakit's Debian + CPython stand-in served from a
loopback registry, not AWS's public.ecr.aws/lambda/python. So this proves the
packages, the layer merge, the wiring (queue, event source mapping, partial
batch responses, redrive, secrets, network) and the code; not AWS's image.

PostgreSQL listens on the host's address on Docker's bridge, with password
authentication for the bridge's subnet: Lambda containers reach it there, with
the password from the Secrets Manager secret that deploy creates.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from builder.app.deploy import physical_id
from builder.app.localstack import REPOSITORY
from builder.app.localstack_info import LocalStackInfo, detect_localstack
from builder.docker import container, network
from builder.errors import EnvironmentProblem

from .conftest import ROOT

sys.path[:0] = [str(ROOT / "tests" / "functions"), str(ROOT / "functions")]

from pgsupport import Cluster, ClusterUnavailable, throwaway_cluster  # noqa: E402
from taskdb.connection import Database, Settings  # noqa: E402
from taskdb.tasks import get_task, insert_task  # noqa: E402

BIN = Path(sys.executable).parent
# The application as a user has it, its own deploy hook (lambdakit.toml) included.
PROJECT_FILES = (
    "template.yaml", "samconfig.toml", "docker-compose.yml", "functions", "layers", "migrations",
    "lambdakit.toml", "scripts/task_app_deploy_hook.py",
)  # fmt: skip
DEPLOY_TIMEOUT_S = 1500
DB_NAME = DB_USER = "tasks"
DB_PASSWORD = "lambdakit-test-only"
# Short, so that a failed message reaches the dead-letter queue in seconds: three
# receives, each hidden this long. WorkerTimeout must stay below it.
WORKER_TIMEOUT_S = 6
VISIBILITY_TIMEOUT_S = 8
MAX_RECEIVE_COUNT = 3
SEED_ERROR = "Unable to import module 'worker.handler': No module named 'psycopg2._psycopg'"

Aws = Callable[[str], Any]


@pytest.fixture(scope="module")
def bridge() -> network.Bridge:
    try:
        return network.default_bridge(container.connect())
    except EnvironmentProblem as err:
        pytest.fail(f"{err.message} ({err.hint})", pytrace=False)


@pytest.fixture(scope="module")
def pg(bridge: network.Bridge) -> Iterator[Cluster]:
    hba = [f"host {DB_NAME} {DB_USER} {bridge.subnet} scram-sha-256"]
    try:
        with throwaway_cluster(listen_addresses=[bridge.address], hba=hba) as cluster:
            admin = Database(Settings(dsn=cluster.dsn()))
            admin.execute(f"CREATE ROLE {DB_USER} LOGIN PASSWORD '{DB_PASSWORD}'")
            admin.execute(f"CREATE DATABASE {DB_NAME} OWNER {DB_USER}")
            admin.close()
            yield cluster
    except ClusterUnavailable as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture(scope="module")
def db(pg: Cluster) -> Iterator[Database]:
    """The migrated database, as the tests read it (over loopback, as its owner)."""
    dsn = f"host=127.0.0.1 port={pg.port} user={DB_USER} password={DB_PASSWORD} dbname={DB_NAME}"
    migrate = [str(BIN / "lambdakit"), "db", "migrate", "--dsn", dsn, "--dir", str(ROOT / "migrations")]
    result = subprocess.run(migrate, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    database = Database(Settings(dsn=dsn))
    yield database
    database.close()


@pytest.fixture(scope="module")
def aws(localstack: LocalStackInfo) -> Aws:
    session = boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    return lambda service: session.client(service, endpoint_url=localstack.url)


def copy_project(destination: Path, stack_name: str) -> Path:
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    samconfig = destination / "samconfig.toml"
    samconfig.write_text(samconfig.read_text().replace('"lambdakit-tasks-local"', f'"{stack_name}"'))
    return destination


def lambdakit(*args: str, timeout: float = DEPLOY_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        # The compose file's variable: the app's deploy hook puts it into LocalStack's Secrets
        # Manager, nowhere else.
        "POSTGRES_PASSWORD": DB_PASSWORD,
    }
    argv = [str(BIN / "lambdakit"), *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, check=False)


def deploy_args(localstack: LocalStackInfo, project: Path, pg: Cluster) -> list[str]:
    return [
        "deploy", "--target", "localstack", "--endpoint-url", localstack.url, "--project-dir", str(project),
        "--parameter", f"DbPort={pg.port}",
        "--parameter", f"WorkerTimeout={WORKER_TIMEOUT_S}",
        "--parameter", f"QueueVisibilityTimeout={VISIBILITY_TIMEOUT_S}",
        "--json",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def deployed(
    localstack: LocalStackInfo,
    tmp_path_factory: pytest.TempPathFactory,
    pg: Cluster,
    db: Database,
) -> dict[str, Any]:
    """`lambdakit deploy --target localstack --json` on a copy of the project."""
    project = copy_project(tmp_path_factory.mktemp("project"), "lambdakit-tasks-local")
    result = lambdakit(*deploy_args(localstack, project, pg))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return json.loads(result.stdout)


def wait_for(condition: Callable[[], Any], *, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout_s:g}s")


def receive_all(aws: Aws, queue_url: str) -> list[dict[str, Any]]:
    response = aws("sqs").receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["All"]
    )
    return response.get("Messages", [])


def test_stack_is_complete_and_every_function_is_active(
    deployed: dict[str, Any], aws: Aws, bridge: network.Bridge
) -> None:
    stack = deployed["stack"]["name"]
    assert (
        aws("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
        == "CREATE_COMPLETE"
    )
    assert (deployed["schema"], deployed["ok"]) == (1, True)
    assert deployed["function_states"] == {"ApiFunction": "Active", "WorkerFunction": "Active"}
    assert set(deployed["outputs"]) >= {"QueueUrl", "DeadLetterQueueUrl"}
    # The password went into the secret only.
    assert DB_PASSWORD not in json.dumps(deployed)
    secret = aws("secretsmanager").get_secret_value(SecretId=deployed["plan"]["parameters"]["DbSecretName"])
    assert json.loads(secret["SecretString"])["password"] == DB_PASSWORD
    # A host-run LocalStack: deploy sends its functions to this host's bridge address.
    assert json.loads(secret["SecretString"])["host"] == bridge.address


def test_queue_has_its_redrive_policy(deployed: dict[str, Any], aws: Aws) -> None:
    sqs = aws("sqs")
    outputs = deployed["outputs"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=outputs["DeadLetterQueueUrl"], AttributeNames=["QueueArn"])
    attributes = sqs.get_queue_attributes(QueueUrl=outputs["QueueUrl"], AttributeNames=["All"])["Attributes"]
    policy = json.loads(attributes["RedrivePolicy"])
    assert policy["deadLetterTargetArn"] == dlq_arn["Attributes"]["QueueArn"]
    assert int(policy["maxReceiveCount"]) == MAX_RECEIVE_COUNT
    assert int(attributes["VisibilityTimeout"]) == VISIBILITY_TIMEOUT_S


def test_worker_consumes_the_queue_with_partial_batch_responses(deployed: dict[str, Any], aws: Aws) -> None:
    worker = physical_id(aws("cloudformation"), deployed["stack"]["name"], "WorkerFunction")
    queue_arn = aws("sqs").get_queue_attributes(
        QueueUrl=deployed["outputs"]["QueueUrl"], AttributeNames=["QueueArn"]
    )
    mappings = aws("lambda").list_event_source_mappings(FunctionName=worker)["EventSourceMappings"]
    assert len(mappings) == 1
    mapping = mappings[0]
    assert mapping["EventSourceArn"] == queue_arn["Attributes"]["QueueArn"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 10


def _one_file_zip(name: str, text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, text)
    return buffer.getvalue()


def test_layers_are_merged_exactly_when_this_localstack_does_not_apply_them(
    deployed: dict[str, Any], aws: Aws, localstack: LocalStackInfo, tmp_path: Path
) -> None:
    """Found by running code, not assumed: a function with a layer looks for the layer's file under /opt."""
    lambda_ = aws("lambda")
    layer = lambda_.publish_layer_version(
        LayerName=f"probe-{uuid.uuid4().hex[:8]}",
        Content={"ZipFile": _one_file_zip("python/lambdakit_layer_probe.py", "PRESENT = True\n")},
    )
    code = _one_file_zip(
        "probe.py",
        "import os\n"
        "def handler(event, context):\n"
        "    return {'applied': os.path.exists('/opt/python/lambdakit_layer_probe.py')}\n",
    )
    name = f"layer-probe-{uuid.uuid4().hex[:8]}"
    lambda_.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role="arn:aws:iam::000000000000:role/probe",
        Handler="probe.handler",
        Code={"ZipFile": code},
        Layers=[layer["LayerVersionArn"]],
    )
    lambda_.get_waiter("function_active_v2").wait(FunctionName=name)
    response = lambda_.invoke(FunctionName=name, Payload=b"{}")
    assert "FunctionError" not in response, response["Payload"].read()
    applied = json.loads(response["Payload"].read())["applied"]

    merged = bool(deployed["merged"])
    print(f"\nLocalStack {localstack.edition} applies layers: {applied}; deploy merged them: {merged}")
    assert applied is detect_localstack(localstack.url).applies_layers
    assert merged is not applied


@pytest.mark.parametrize("function", ["ApiFunction", "WorkerFunction"])
def test_packages_localstack_runs_carry_psycopg2(deployed: dict[str, Any], aws: Aws, function: str) -> None:
    """Community does not apply layers: the code LocalStack stores must hold psycopg2 itself."""
    assert {record["function"] for record in deployed["merged"]} == {"ApiFunction", "WorkerFunction"}
    # Imported from the merged package alone, in a local python3.12, before anything was deployed.
    assert deployed["functions"][function] == "valid"

    found = aws("lambda").get_function(
        FunctionName=physical_id(aws("cloudformation"), deployed["stack"]["name"], function)
    )
    assert found["Configuration"]["Runtime"] == "python3.12"
    # The layer is attached as on AWS, whether or not this LocalStack applies it.
    assert len(found["Configuration"]["Layers"]) == 1
    with urllib.request.urlopen(found["Code"]["Location"], timeout=30) as response:
        names = zipfile.ZipFile(io.BytesIO(response.read())).namelist()
    assert "psycopg2/__init__.py" in names
    assert any(n.startswith("psycopg2/_psycopg.cpython-312-x86_64-linux-gnu") for n in names), names


def test_e2e_completes_a_task_through_localstack(
    deployed: dict[str, Any], localstack: LocalStackInfo, db: Database
) -> None:
    """API function (invoked with an HTTP API event) -> SQS -> event source mapping -> worker -> database."""
    project = deployed["plan"]["commands"][1]["cwd"]
    argv = ["e2e", "--target", "localstack", "--endpoint-url", localstack.url, "--project-dir", project]
    result = lambdakit(*argv, "--timeout", "90", "--json", timeout=300)
    document = json.loads(result.stdout)
    assert result.returncode == 0, document
    assert (document["schema"], document["ok"], document["via"], document["status"]) == (
        1,
        True,
        "invoke",
        "completed",
    )
    assert [hop["name"] for hop in document["hops"]][:2] == [
        "api: create task",
        "queue + worker: completed",
    ]
    task = get_task(db, uuid.UUID(document["task_id"]))
    assert task is not None
    assert (task.status, task.attempts) == ("completed", 1)

    text = lambdakit(*argv, "--timeout", "90", timeout=300)
    print(f"\n$ lambdakit {' '.join(argv)}\n{text.stdout}")
    assert text.returncode == 0, text.stdout + text.stderr
    assert "queue + worker: completed" in text.stdout


def test_a_poison_message_fails_alone_and_reaches_the_dead_letter_queue(
    deployed: dict[str, Any], aws: Aws, db: Database
) -> None:
    """One batch: good tasks complete once; the malformed message is retried, then dead-lettered."""
    outputs = deployed["outputs"]
    good = [uuid.uuid4() for _ in range(3)]
    with db.transaction() as cur:
        for task_id in good:
            insert_task(cur, task_id, "thumbnail", {"width": 8, "height": 8})
    poison = f"not json {uuid.uuid4()}"
    entries = [{"Id": str(i), "MessageBody": json.dumps({"task_id": str(t)})} for i, t in enumerate(good)]
    aws("sqs").send_message_batch(
        QueueUrl=outputs["QueueUrl"], Entries=[*entries, {"Id": "p", "MessageBody": poison}]
    )

    def all_completed() -> bool:
        tasks = [get_task(db, task_id) for task_id in good]
        return all(task is not None and task.status == "completed" for task in tasks)

    wait_for(all_completed, timeout_s=60, what="the good tasks of the batch completed")
    dead = wait_for(
        lambda: [m for m in receive_all(aws, outputs["DeadLetterQueueUrl"]) if m["Body"] == poison],
        timeout_s=MAX_RECEIVE_COUNT * VISIBILITY_TIMEOUT_S + 60,
        what="the poison message in the dead-letter queue",
    )
    assert len(dead) == 1
    assert int(dead[0]["Attributes"]["ApproximateReceiveCount"]) >= MAX_RECEIVE_COUNT
    for task_id in good:
        task = get_task(db, task_id)
        assert task is not None
        # Processed once: the poison message's retries did not take the good ones with them.
        assert (task.status, task.attempts) == ("completed", 1)


# --- the seed's failure ---------------------------------------------------------------------------

# What the seed's team did: `pip install -t` on a Python 3.11 machine, packaged with the worker.
SEED_MAKEFILE_LINES = """
.PHONY: seed-psycopg2
build-WorkerFunction: seed-psycopg2
seed-psycopg2:
\t{python} -m pip install --quiet --disable-pip-version-check --target "$(ARTIFACTS_DIR)" \\
\t\t--python-version 3.11 --implementation cp --platform manylinux2014_x86_64 --only-binary=:all: \\
\t\tpsycopg2-binary==2.9.11
"""


@pytest.fixture(scope="module")
def seed_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = copy_project(tmp_path_factory.mktemp("seed"), "lambdakit-tasks-seed")
    makefile = project / "functions" / "Makefile"
    makefile.write_text(makefile.read_text() + SEED_MAKEFILE_LINES.format(python=sys.executable))
    return project


def test_the_seeds_broken_worker_is_refused_before_anything_is_deployed(
    localstack: LocalStackInfo, seed_project: Path, pg: Cluster, aws: Aws
) -> None:
    result = lambdakit(*deploy_args(localstack, seed_project, pg))
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    document = json.loads(result.stdout)
    assert (document["ok"], document["step"]) == (False, "validate")
    assert "WorkerFunction" in document["message"]
    problems = [(p["code"], p["path"]) for p in document["validation"]["problems"]]
    # Paths as Lambda assembles the function: python/ is the package (/var/task).
    assert ("abi-mismatch", "python/psycopg2/_psycopg.cpython-311-x86_64-linux-gnu.so") in problems, problems
    stacks = aws("cloudformation").list_stacks()["StackSummaries"]
    assert "lambdakit-tasks-seed" not in {
        s["StackName"] for s in stacks if s["StackStatus"] != "DELETE_COMPLETE"
    }


@pytest.fixture(scope="module")
def seed_deployed_unchecked(
    localstack: LocalStackInfo, seed_project: Path, pg: Cluster
) -> subprocess.CompletedProcess[str]:
    """The seed's worker deployed with `--unsafe-skip-validation` (what the tests below look at)."""
    return lambdakit(*deploy_args(localstack, seed_project, pg), "--unsafe-skip-validation")


def test_the_seeds_broken_worker_deployed_unchecked_fails_with_the_seeds_error(
    localstack: LocalStackInfo,
    seed_project: Path,
    seed_deployed_unchecked: subprocess.CompletedProcess[str],
    db: Database,
    aws: Aws,
) -> None:
    deployed = seed_deployed_unchecked
    # Deployed, but unchecked: exit 3, "not verified", never the 0 of a checked deploy.
    assert deployed.returncode == 3, deployed.stdout[-3000:] + deployed.stderr[-3000:]
    document = json.loads(deployed.stdout)
    assert document["functions"] == {"ApiFunction": "skipped", "WorkerFunction": "skipped"}
    assert any("--unsafe-skip-validation" in note for note in document["plan"]["notes"])

    argv = ["e2e", "--target", "localstack", "--endpoint-url", localstack.url]
    e2e = lambdakit(*argv, "--project-dir", str(seed_project), "--timeout", "20", "--json", timeout=300)
    assert e2e.returncode == 1, e2e.stdout + e2e.stderr
    report = json.loads(e2e.stdout)
    assert (report["ok"], report["failed_hop"], report["status"]) == (False, "queue + worker", "pending")
    # The API (whose package is sound) created the task; the worker cannot even load.
    assert report["diagnosis"]["error"] == f"Runtime.ImportModuleError: {SEED_ERROR}"

    task_id = uuid.UUID(report["task_id"])
    dead = wait_for(
        lambda: [
            m
            for m in receive_all(aws, document["outputs"]["DeadLetterQueueUrl"])
            if report["task_id"] in m["Body"]
        ],
        timeout_s=MAX_RECEIVE_COUNT * VISIBILITY_TIMEOUT_S + 60,
        what="the task's message in the dead-letter queue",
    )
    assert len(dead) == 1
    task = get_task(db, task_id)
    assert task is not None
    assert (task.status, task.attempts) == ("pending", 0)

    text = lambdakit(*argv, "--project-dir", str(seed_project), "--timeout", "5", timeout=300)
    print(f"\n$ lambdakit {' '.join(argv)}\n{text.stdout}")
    assert text.returncode == 1
    assert "e2e failed at 'queue + worker'" in text.stdout
    assert SEED_ERROR in text.stdout


def validate_deployed(
    localstack: LocalStackInfo, function: str, cache: Path, *options: str
) -> subprocess.CompletedProcess[str]:
    argv = [str(BIN / "lambdakit"), "validate", "--deployed", function, "--target", "localstack",
            "--endpoint-url", localstack.url, *options]  # fmt: skip
    env = {**os.environ, "LAMBDAKIT_CACHE": str(cache)}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)


def validate_deployed_json(localstack: LocalStackInfo, function: str, cache: Path) -> dict[str, Any]:
    """`lambdakit validate --deployed FUNCTION --json`; its exit code goes into the document's "exit"."""
    result = validate_deployed(localstack, function, cache, "--json")
    return {**json.loads(result.stdout), "exit": result.returncode}


def test_validate_deployed_names_the_seeds_broken_file_and_error_in_one_command(
    localstack: LocalStackInfo,
    seed_deployed_unchecked: subprocess.CompletedProcess[str],
    aws: Aws,
    tmp_path: Path,
) -> None:
    """What the seed's team needed: the deployed worker read back from Lambda, and why it cannot load."""
    assert seed_deployed_unchecked.returncode == 3, seed_deployed_unchecked.stderr[-3000:]
    stack = json.loads(seed_deployed_unchecked.stdout)["stack"]["name"]
    worker = physical_id(aws("cloudformation"), stack, "WorkerFunction")
    document = validate_deployed_json(localstack, worker, tmp_path)
    assert (document["exit"], document["verdict"]) == (1, "invalid"), document
    assert document["function"]["handler"] == "worker.handler.lambda_handler"
    problems = {(p["code"], p["path"]): p for p in document["report"]["problems"]}
    abi = problems.get(("abi-mismatch", "python/psycopg2/_psycopg.cpython-311-x86_64-linux-gnu.so"))
    assert abi is not None, sorted(problems)
    assert abi["source"] == "function package"
    handler = problems["handler-not-found", "worker.handler.lambda_handler"]
    assert "No module named 'psycopg2._psycopg'" in handler["message"]
    assert handler["source"] == "function package"

    text = validate_deployed(localstack, worker, tmp_path)
    print(f"\n$ lambdakit validate --deployed {worker} --target localstack\n{text.stdout}")
    assert text.returncode == 1
    assert "from function package:" in text.stdout
    assert "python/psycopg2/_psycopg.cpython-311-x86_64-linux-gnu.so" in text.stdout
    # The second run found every zip in the cache.
    assert "downloaded" not in text.stdout


def test_validate_deployed_finds_the_healthy_worker_valid(
    localstack: LocalStackInfo, deployed: dict[str, Any], aws: Aws, tmp_path: Path
) -> None:
    """Its psycopg2 layer is attached and, on Community, merged into the package too: both load."""
    worker = physical_id(aws("cloudformation"), deployed["stack"]["name"], "WorkerFunction")
    document = validate_deployed_json(localstack, worker, tmp_path)
    assert (document["exit"], document["verdict"]) == (0, "valid"), document
    assert len(document["layers"]) == 1
    assert document["overwrites"] == []
    assert document["report"]["imports"]["modules"]["worker.handler:lambda_handler"] is None


# --- architectures --------------------------------------------------------------------------------


def _create_and_invoke(aws: Aws, runtime: str, arch: str) -> tuple[dict[str, Any], Any]:
    code = _one_file_zip(
        "probe.py",
        "import platform, sys\n"
        "def handler(event, context):\n"
        "    return {'machine': platform.machine(), 'python': '%d.%d' % sys.version_info[:2]}\n",
    )
    name = f"arch-probe-{arch}-{runtime.replace('.', '')}-{uuid.uuid4().hex[:6]}"
    lambda_ = aws("lambda")
    lambda_.create_function(
        FunctionName=name,
        Runtime=runtime,
        Role="arn:aws:iam::000000000000:role/probe",
        Handler="probe.handler",
        Code={"ZipFile": code},
        Architectures=[arch],
    )
    config = wait_for(
        lambda: (c := lambda_.get_function_configuration(FunctionName=name))["State"] != "Pending" and c,
        timeout_s=120,
        what=f"{name} leaving Pending",
    )
    if config["State"] != "Active":
        return config, None
    response = lambda_.invoke(FunctionName=name, Payload=b"{}")
    return config, json.loads(response["Payload"].read())


def test_an_arm64_function_runs_on_an_arm64_interpreter(
    localstack: LocalStackInfo, localstack_env: dict[str, str], aws: Aws
) -> None:
    """The python3.11 arm64 stand-in (Debian's arm64 CPython, under qemu) serves arm64 functions."""
    served = served_platforms(f"127.0.0.1:{localstack_env['LOCALSTACK_REGISTRY_PORT']}", "python3.11")
    assert "linux/arm64" in served, f"no arm64 python3.11 image is served ({served}): is qemu registered?"
    config, answer = _create_and_invoke(aws, "python3.11", "arm64")
    assert config["State"] == "Active", config.get("StateReason")
    assert answer == {"machine": "aarch64", "python": "3.11"}


def test_a_function_for_an_architecture_without_an_image_fails_to_create_with_the_reason(aws: Aws) -> None:
    """No arm64 python3.12 interpreter exists here: the function must not run on the x86_64 one."""
    config, answer = _create_and_invoke(aws, "python3.12", "arm64")
    assert answer is None
    assert config["State"] == "Failed"
    assert "no matching manifest for linux/arm64" in config["StateReason"]


def served_platforms(registry: str, runtime: str) -> set[str]:
    """The platforms of the manifest list LocalStack pulls for the runtime."""
    request = urllib.request.Request(
        f"http://{registry}/v2/{REPOSITORY}/manifests/{runtime}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.list.v2+json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        manifests = json.loads(response.read())["manifests"]
    return {f"{m['platform']['os']}/{m['platform']['architecture']}" for m in manifests}
