"""publish-layer and doctor's log check against a real LocalStack.

Real: uv resolving six for python3.12 x86_64 and build-layer's import check in a local python3.12;
LocalStack's Lambda (publish_layer_version, list_layer_versions, create_function, invoke), its
CloudFormation and CloudWatch Logs; `lambdakit validate --deployed` reading the function and its
layer back. Stand-ins (scripts/localstack.sh --lambda-standins): the runtime init and image.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from builder.app.localstack_info import LocalStackInfo

pytestmark = pytest.mark.network

LAMBDAKIT = Path(sys.executable).parent / "lambdakit"
RUNTIME, ARCH = "python3.12", "x86_64"
ROLE = "arn:aws:iam::000000000000:role/publish-layer"
HANDLER = "import six\n\n\ndef handler(event, context):\n    return {'six': six.__version__}\n"
FAILING_HANDLER = "def handler(event, context):\n    raise RuntimeError('the worker broke')\n"
LOGS_TIMEOUT_S = 60


def lambdakit(*args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LAMBDAKIT), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OUT holding the six layer built for python3.12 x86_64, import-checked in a local python3.12."""
    out = tmp_path_factory.mktemp("layers")
    result = lambdakit("build-layer", "six", "-p", "six==1.16.0", "--runtime", RUNTIME, "--arch", ARCH,
                       "--backend", "uv", "--import-check", "interpreter",
                       "--out", str(out), "--json")  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert json.loads(result.stdout)["manifest"]["validation"]["verdict"] == "valid"
    return out


def client(localstack: LocalStackInfo, service: str) -> Any:
    session = boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    return session.client(service, endpoint_url=localstack.url)  # type: ignore[call-overload]


def function_zip(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", source)
    return buffer.getvalue()


def test_publish_layer_publishes_once_and_a_function_using_it_validates_as_deployed(
    localstack: LocalStackInfo, built: Path
) -> None:
    layer_name = f"six-{uuid.uuid4().hex[:8]}"
    argv = ["publish-layer", "six", "--layer-name", layer_name, "--target", "localstack",
            "--endpoint-url", localstack.url, "--out", str(built), "--json"]  # fmt: skip
    first = lambdakit(*argv)
    assert first.returncode == 0, first.stdout + first.stderr
    published = json.loads(first.stdout)
    [outcome] = published["regions"]
    assert (outcome["region"], outcome["status"], outcome["via"]) == ("us-east-1", "published", "direct")
    arn = outcome["arn"]
    assert arn.endswith(f":layer:{layer_name}:{outcome['version']}")

    # LocalStack's own record of the version: this zip (its CodeSha256), this runtime and architecture.
    lambda_client = client(localstack, "lambda")
    stored = lambda_client.get_layer_version_by_arn(Arn=arn)
    assert stored["Content"]["CodeSha256"] == base64.b64encode(bytes.fromhex(published["sha256"])).decode()
    assert (stored["CompatibleRuntimes"], stored["CompatibleArchitectures"]) == ([RUNTIME], [ARCH])
    assert stored["Description"] == f"lambdakit sha256:{published['sha256']} {RUNTIME} {ARCH}"

    second = lambdakit(*argv)
    assert second.returncode == 0, second.stdout + second.stderr
    assert json.loads(second.stdout)["regions"] == [{**outcome, "status": "up-to-date", "via": None}]
    assert len(lambda_client.list_layer_versions(LayerName=layer_name)["LayerVersions"]) == 1

    name = f"uses-{layer_name}"
    lambda_client.create_function(
        FunctionName=name,
        Runtime=RUNTIME,
        Architectures=[ARCH],
        Handler="handler.handler",
        Role=ROLE,
        Code={"ZipFile": function_zip(HANDLER)},
        Layers=[arn],
        Timeout=30,
    )
    lambda_client.get_waiter("function_active_v2").wait(FunctionName=name)
    checked = lambdakit("validate", "--deployed", name, "--target", "localstack",
                        "--endpoint-url", localstack.url, "--json")  # fmt: skip
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    report = json.loads(checked.stdout)
    assert report["verdict"] == "valid"
    assert [(layer["arn"], layer["code_sha256"]) for layer in report["layers"]] == [
        (arn, published["sha256"])
    ]


def test_doctor_names_a_deployed_function_that_logged_an_error_and_the_command_to_diagnose_it(
    localstack: LocalStackInfo, tmp_path: Path
) -> None:
    stack = f"doctor-{uuid.uuid4().hex[:8]}"
    function = f"{stack}-worker"
    bucket = f"{stack}-code"
    s3 = client(localstack, "s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="worker.zip", Body=function_zip(FAILING_HANDLER))
    template = {"Resources": {"WorkerFunction": {"Type": "AWS::Lambda::Function", "Properties": {
        "FunctionName": function, "Runtime": RUNTIME, "Architectures": [ARCH], "Handler": "handler.handler",
        "Role": ROLE, "Code": {"S3Bucket": bucket, "S3Key": "worker.zip"}, "Timeout": 30,
    }}}}  # fmt: skip
    cloudformation = client(localstack, "cloudformation")
    cloudformation.create_stack(StackName=stack, TemplateBody=json.dumps(template))
    cloudformation.get_waiter("stack_create_complete").wait(StackName=stack)
    lambda_client = client(localstack, "lambda")
    lambda_client.get_waiter("function_active_v2").wait(FunctionName=function)
    invoked = lambda_client.invoke(FunctionName=function, Payload=b"{}")
    assert invoked.get("FunctionError") == "Unhandled", invoked["Payload"].read()

    (tmp_path / "samconfig.toml").write_text(
        f'version = 0.1\n\n[localstack.global.parameters]\nstack_name = "{stack}"\nregion = "us-east-1"\n'
    )
    # LocalStack hands an invocation's log to CloudWatch Logs once it has answered: wait for it.
    deadline = time.monotonic() + LOGS_TIMEOUT_S
    while True:
        doctor = lambdakit(
            "doctor", "--project-dir", str(tmp_path), "--endpoint-url", localstack.url, "--json"
        )
        found = {check["name"]: check for check in json.loads(doctor.stdout)["checks"]}
        finding = found["WorkerFunction logs"]
        if not finding["ok"] or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert (finding["ok"], finding["optional"]) == (False, True), finding
    assert "RuntimeError: the worker broke" in finding["detail"] or "Traceback" in finding["detail"], finding
    assert finding["fix"] == (
        f"lambdakit validate --deployed {function} --target localstack --endpoint-url {localstack.url}"
    )
