"""lambdakit in someone else's SAM project, as its user would run it, on a real LocalStack.

The project is written here, with its own names and parameters, and nothing of this
repository's application (no template.yaml of ours, no deploy hook, no database): one
function importing psycopg2 (from a layer `lambdakit init` adds) and numpy (its own
requirements, resolved by the function Makefile init writes). Then, as the README says:
`lambdakit init`, `sam build`, `lambdakit validate` on the build output, `lambdakit deploy
--target localstack`, and an invocation that returns both versions.

Real: the SAM CLI, uv, LocalStack's CloudFormation and Lambda running the code in a container.
Stand-ins (scripts/localstack.sh --lambda-standins, see test_deploy_localstack.py): LocalStack's
runtime init and the python3.12 runtime image.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import boto3
import pytest

from builder.app.localstack_info import LocalStackInfo

# Resolves from the package index; validate's import check runs in the runtime image.
pytestmark = [pytest.mark.network, pytest.mark.docker]

BIN = Path(sys.executable).parent
STACK = "orders-report-local"

TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Description: Someone else's report service # their comment stays
Parameters:
  ReportStage:
    Type: String
    Default: dev
Globals:
  Function:
    Runtime: python3.12
    Architectures: [x86_64]
    Timeout: 30
Resources:
  # The one function: psycopg2 from a layer, numpy from its own requirements.
  ReportFn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/report/
      Handler: report.handler
      Environment:
        Variables:
          STAGE: !Ref ReportStage
Outputs:
  ReportFnName:
    Value: !Ref ReportFn
"""

SAMCONFIG = f"""\
version = 0.1

[localstack.global.parameters]
stack_name = "{STACK}"
region = "us-east-1"

[localstack.deploy.parameters]
capabilities = "CAPABILITY_IAM"
resolve_s3 = true
parameter_overrides = ["ReportStage=local"]
"""

HANDLER = """\
import os

import numpy
import psycopg2


def handler(event, context):
    return {"psycopg2": psycopg2.__version__, "numpy": numpy.__version__, "stage": os.environ["STAGE"]}
"""


def lambdakit(project: Path, *args: str, timeout: float = 1500) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "lambdakit"), *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "SAM_CLI_TELEMETRY": "0"},
        check=False,
    )


def shown(result: subprocess.CompletedProcess[str]) -> str:
    return textwrap.shorten(result.stdout[-3000:] + result.stderr[-3000:], 6000)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("their-project")
    (root / "template.yaml").write_text(TEMPLATE)
    (root / "samconfig.toml").write_text(SAMCONFIG)
    code = root / "src" / "report"
    code.mkdir(parents=True)
    (code / "report.py").write_text(HANDLER)
    (code / "requirements.txt").write_text("numpy==2.2.6\n")
    return root


@pytest.fixture(scope="module")
def initialised(project: Path) -> Path:
    result = lambdakit(project, "init", "--edit-template", "--function-makefile", "--json")
    assert result.returncode == 0, shown(result)
    document = json.loads(result.stdout)
    assert document["ok"], document
    text = (project / "template.yaml").read_text()
    # Their lines are all still there, comments and tags included.
    assert all(line in text.splitlines() for line in TEMPLATE.splitlines())
    assert (project / "layers" / "psycopg2" / "Makefile").is_file()
    assert (project / "src" / "report" / "Makefile").is_file()
    return project


def test_sam_build_then_validate_on_the_build_output(initialised: Path) -> None:
    build = subprocess.run(
        [str(BIN / "sam"), "build"],
        cwd=initialised,
        capture_output=True,
        text=True,
        timeout=1500,
        env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "SAM_CLI_TELEMETRY": "0"},
        check=False,
    )
    assert build.returncode == 0, shown(build)
    result = lambdakit(initialised, "validate", ".aws-sam/build", "--import-check", "runtime-image", "--json")
    report = json.loads(result.stdout)
    assert (result.returncode, report["verdict"]) == (0, "valid"), shown(result)
    kinds = {(a["kind"], a["logical_id"]): a for a in report["artifacts"]}
    assert set(kinds) == {("function", "ReportFn"), ("layer", "Psycopg2Layer")}, report
    function = kinds[("function", "ReportFn")]
    assert (function["runtime"], function["arch"]) == ("python3.12", "x86_64")
    # With its layer, in the runtime image: numpy from its package, psycopg2 from the layer,
    # the handler looked up.
    modules = function["report"]["imports"]["modules"]
    assert (modules["numpy"], modules["psycopg2"], modules["report:handler"]) == (None, None, None)
    assert function["report"]["imports"]["where"].startswith("image public.ecr.aws/lambda/python:3.12")


def test_deploy_to_localstack_and_invoke(initialised: Path, localstack: LocalStackInfo) -> None:
    result = lambdakit(
        initialised, "deploy", "--target", "localstack", "--endpoint-url", localstack.url, "--json"
    )
    assert result.returncode == 0, shown(result)
    deployed = json.loads(result.stdout)
    assert deployed["functions"] == {"ReportFn": "valid"}, deployed
    assert deployed["layers"] == {"psycopg2": "valid"}, deployed
    assert deployed["plan"]["parameters"] == {"ReportStage": "local"}

    session = boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    name = deployed["outputs"]["ReportFnName"]
    answer = session.client("lambda", endpoint_url=localstack.url).invoke(FunctionName=name, Payload=b"{}")
    payload: dict[str, Any] = json.loads(answer["Payload"].read())
    assert "FunctionError" not in answer, payload
    assert payload["psycopg2"].startswith("2.9.11"), payload
    assert (payload["numpy"], payload["stage"]) == ("2.2.6", "local")
