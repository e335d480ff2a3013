"""The real template deployed to a real LocalStack with the command users run, checked through boto3.

What this exercises: LocalStack's CloudFormation with the SAM transform creating
the queues, the redrive policy, the IAM role, the layer, both functions and the
worker's SQS event source mapping; lambdakit's edition detection, layer merge,
function-package validation (imports in a local python3.12) and DB secret.

What it does NOT exercise: running any Lambda code. LocalStack needs its
lambda-runtime-init binary and the Lambda base images to run a function, and
neither can be downloaded here. scripts/localstack.sh --lambda-standins puts a
stand-in for each (an init that only fails, an image with one text file) so
that functions are created; an invocation fails, and no test here invokes one.
The HTTP API is not emulated by LocalStack Community either.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from builder.deploy import LocalStackInfo

from .conftest import ROOT

BIN = Path(sys.executable).parent
PROJECT_FILES = ("template.yaml", "samconfig.toml", "docker-compose.yml", "functions", "layers")
DEPLOY_TIMEOUT_S = 1500


@pytest.fixture(scope="module")
def deployed(localstack: LocalStackInfo, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`lambdakit deploy --target localstack --json` on a copy of the project."""
    project = tmp_path_factory.mktemp("project")
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, project / name)
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        # The compose file's variable: deploy puts it into LocalStack's Secrets Manager, nowhere else.
        "POSTGRES_PASSWORD": "lambdakit-test-only",
    }
    argv = [str(BIN / "lambdakit"), "deploy", "--target", "localstack", "--endpoint-url", localstack.url]
    result = subprocess.run(
        [*argv, "--project-dir", str(project), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=DEPLOY_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def aws(localstack: LocalStackInfo):
    session = boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    return lambda service: session.client(service, endpoint_url=localstack.url)


def physical_id(aws, stack: str, logical_id: str) -> str:
    resource = aws("cloudformation").describe_stack_resource(StackName=stack, LogicalResourceId=logical_id)
    return resource["StackResourceDetail"]["PhysicalResourceId"]


def test_stack_is_complete(deployed: dict[str, Any], aws) -> None:
    stack = deployed["stack"]["name"]
    assert (
        aws("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
        == "CREATE_COMPLETE"
    )
    assert (deployed["schema"], deployed["ok"]) == (1, True)
    assert set(deployed["outputs"]) >= {"QueueUrl", "DeadLetterQueueUrl"}
    # The password went into the secret only.
    assert "lambdakit-test-only" not in json.dumps(deployed)
    secret = aws("secretsmanager").get_secret_value(SecretId=deployed["plan"]["parameters"]["DbSecretName"])
    assert json.loads(secret["SecretString"])["host"] == "postgres"


def test_queue_has_its_redrive_policy(deployed: dict[str, Any], aws) -> None:
    sqs = aws("sqs")
    outputs = deployed["outputs"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=outputs["DeadLetterQueueUrl"], AttributeNames=["QueueArn"])
    attributes = sqs.get_queue_attributes(QueueUrl=outputs["QueueUrl"], AttributeNames=["All"])["Attributes"]
    policy = json.loads(attributes["RedrivePolicy"])
    assert policy["deadLetterTargetArn"] == dlq_arn["Attributes"]["QueueArn"]
    assert int(policy["maxReceiveCount"]) == 3


def test_worker_consumes_the_queue_with_partial_batch_responses(deployed: dict[str, Any], aws) -> None:
    worker = physical_id(aws, deployed["stack"]["name"], "WorkerFunction")
    queue_arn = aws("sqs").get_queue_attributes(
        QueueUrl=deployed["outputs"]["QueueUrl"], AttributeNames=["QueueArn"]
    )
    mappings = aws("lambda").list_event_source_mappings(FunctionName=worker)["EventSourceMappings"]
    assert len(mappings) == 1
    mapping = mappings[0]
    assert mapping["EventSourceArn"] == queue_arn["Attributes"]["QueueArn"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 10


@pytest.mark.parametrize("function", ["ApiFunction", "WorkerFunction"])
def test_packages_localstack_would_run_carry_psycopg2(deployed: dict[str, Any], aws, function: str) -> None:
    """Community does not apply layers: the code LocalStack stores must hold psycopg2 itself."""
    assert deployed["localstack"]["applies_layers"] is False
    assert {record["function"] for record in deployed["merged"]} == {"ApiFunction", "WorkerFunction"}
    # Imported from the merged package alone, in a local python3.12, before anything was deployed.
    assert deployed["functions"][function] == "valid"

    found = aws("lambda").get_function(FunctionName=physical_id(aws, deployed["stack"]["name"], function))
    assert found["Configuration"]["Runtime"] == "python3.12"
    # The layer is attached as on AWS (LocalStack Community ignores it when running).
    assert len(found["Configuration"]["Layers"]) == 1
    with urllib.request.urlopen(found["Code"]["Location"], timeout=30) as response:
        names = zipfile.ZipFile(io.BytesIO(response.read())).namelist()
    assert "psycopg2/__init__.py" in names
    assert any(n.startswith("psycopg2/_psycopg.cpython-312-x86_64-linux-gnu") for n in names), names
    assert any(n.startswith("psycopg2_binary.libs/libpq") for n in names)


def test_e2e_reaches_the_api_function_by_invoke(
    deployed: dict[str, Any], localstack: LocalStackInfo, aws
) -> None:
    """Wiring only: e2e finds the stack and, with no HTTP API here, invokes the API function.

    Whether the task completes is not asserted: the function cannot run on this
    machine (see the module docstring), so here the invoke fails and e2e says so.
    """
    project = deployed["plan"]["commands"][1]["cwd"]
    argv = [str(BIN / "lambdakit"), "e2e", "--target", "localstack", "--endpoint-url", localstack.url]
    result = subprocess.run(
        [*argv, "--project-dir", project, "--timeout", "5", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    document = json.loads(result.stdout)
    assert (document["schema"], document["via"]) == (1, "invoke")
    if result.returncode != 0:
        api = physical_id(aws, deployed["stack"]["name"], "ApiFunction")
        assert document["reason"].startswith(f"the API did not answer: invoking {api}")
