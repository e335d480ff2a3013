"""A plain function, no SAM: `lambdakit package-function` writes its zip, boto3 creates it on a real
LocalStack, and it runs there with psycopg2 and six from the zip alone.

Real: uv resolving psycopg2-binary and six for python3.12 x86_64, the audit and import check,
LocalStack's Lambda service (create-function, update-function-code, invoke) running the code in a
container. Stand-ins (scripts/localstack.sh --lambda-standins, see test_deploy_localstack.py):
LocalStack's runtime init and the python3.12 runtime image.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from builder.app.localstack_info import LocalStackInfo

pytestmark = pytest.mark.network

LAMBDAKIT = Path(sys.executable).parent / "lambdakit"
RUNTIME, ARCH = "python3.12", "x86_64"  # what the stand-ins serve for x86_64 (test_deploy_localstack.py)
REQUIREMENTS = "psycopg2-binary==2.9.11\nsix==1.16.0\n"
HANDLER = """\
import psycopg2
import six

REVISION = {revision}


def handler(event, context):
    return {{"psycopg2": psycopg2.__version__, "six": six.__version__, "revision": REVISION}}
"""


@pytest.fixture(scope="module")
def lambda_client(localstack: LocalStackInfo) -> Any:
    session = boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    return session.client("lambda", endpoint_url=localstack.url)


def package(fn: Path, revision: int) -> tuple[bytes, dict[str, Any]]:
    (fn / "handler.py").write_text(HANDLER.format(revision=revision))
    argv = [str(LAMBDAKIT), "package-function", str(fn), "--runtime", RUNTIME, "--arch", ARCH,
            "--handler", "handler.handler", "--json"]  # fmt: skip
    result = subprocess.run(argv, cwd=fn.parent, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    document = json.loads(result.stdout)
    assert (document["verdict"], document["packages"]) == (
        "valid",
        {"psycopg2-binary": "2.9.11", "six": "1.16.0"},
    )
    return Path(document["path"]).read_bytes(), document


def code_sha256(zip_bytes: bytes) -> str:
    """Lambda's CodeSha256: the zip's sha256, base64."""
    return base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode()


def invoke(lambda_client: Any, name: str) -> dict[str, Any]:
    response = lambda_client.invoke(FunctionName=name, Payload=b"{}")
    payload = response["Payload"].read()
    assert "FunctionError" not in response, payload
    answer: dict[str, Any] = json.loads(payload)
    return answer


def test_a_packaged_function_is_created_invoked_and_updated_with_boto3(
    lambda_client: Any, tmp_path: Path
) -> None:
    fn = tmp_path / "pgfn"
    fn.mkdir()
    (fn / "requirements.txt").write_text(REQUIREMENTS)
    zip_bytes, document = package(fn, revision=1)
    assert document["handler"]["status"] == "passed"

    name = f"package-function-{uuid.uuid4().hex[:8]}"
    created = lambda_client.create_function(
        FunctionName=name,
        Runtime=RUNTIME,
        Architectures=[ARCH],
        Handler="handler.handler",
        Role="arn:aws:iam::000000000000:role/package-function",
        Code={"ZipFile": zip_bytes},
        Timeout=30,
    )
    assert created["CodeSha256"] == code_sha256(zip_bytes)
    lambda_client.get_waiter("function_active_v2").wait(FunctionName=name)
    first = invoke(lambda_client, name)
    assert first["psycopg2"].startswith("2.9.11 "), first
    assert (first["six"], first["revision"]) == ("1.16.0", 1)

    zip_bytes, _ = package(fn, revision=2)
    updated = lambda_client.update_function_code(FunctionName=name, ZipFile=zip_bytes)
    assert updated["CodeSha256"] == code_sha256(zip_bytes)
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=name)
    second = invoke(lambda_client, name)
    assert second["psycopg2"].startswith("2.9.11 "), second
    assert (second["six"], second["revision"]) == ("1.16.0", 2)
