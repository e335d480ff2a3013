"""Fixtures for the deploy tests: a small SAM project written by the test, and a real LocalStack.

The LocalStack fixture starts LocalStack on this host with scripts/localstack.sh
(its own Python 3.13 venv in ~/.cache/lambdakit, about 2 minutes to create the first
time) on free ports. When it cannot start, the tests that need it FAIL with the
reason; they are marked `localstack` (tests/conftest.py): `pytest -m "not localstack"`
leaves them out on purpose.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder.app.localstack_info import LocalStackInfo, detect_localstack

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "localstack.sh"
# Cold: venv creation plus stand-in preparation; warm it takes seconds.
START_TIMEOUT_S = 900

TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Architecture:
    Type: String
    Default: x86_64
  DbHost:
    Type: String
  DbSecretName:
    Type: String
Globals:
  Function:
    Runtime: python3.12
    Architectures: [!Ref Architecture]
    Layers: [!Ref DepsLayer]
Resources:
  DepsLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layers/deps/
  ApiFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/
      Handler: api.handler
      Events:
        Create:
          Type: HttpApi
          Properties: {Path: /tasks, Method: POST}
  WorkerFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/
      Handler: worker.handler
      Layers: [arn:aws:lambda:us-east-1:123456789012:layer:other:1]
      Events:
        Tasks:
          Type: SQS
          Properties:
            Queue: !GetAtt Queue.Arn
            FunctionResponseTypes: [ReportBatchItemFailures]
  Queue:
    Type: AWS::SQS::Queue
"""

SAMCONFIG = """\
version = 0.1

[localstack.global.parameters]
stack_name = "mini-local"
region = "us-east-1"

[localstack.deploy.parameters]
capabilities = "CAPABILITY_IAM"
parameter_overrides = ["Architecture=x86_64", "DbHost=localhost", "DbSecretName=mini/local/db"]

[prod.global.parameters]
stack_name = "mini-prod"
region = "eu-west-1"

[prod.deploy.parameters]
capabilities = "CAPABILITY_IAM"
confirm_changeset = true
parameter_overrides = "Architecture=x86_64 DbHost=db.example.internal DbSecretName=mini/prod/db"
"""

COMPOSE = """\
services:
  db:
    image: postgres:15
  localstack:
    image: localstack/localstack:4.14.0
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A SAM project: one layer used through Globals, two functions, a queue."""
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    (tmp_path / "samconfig.toml").write_text(SAMCONFIG)
    (tmp_path / "docker-compose.yml").write_text(COMPOSE)
    (tmp_path / "layers" / "deps").mkdir(parents=True)
    functions = tmp_path / "functions"
    functions.mkdir()
    (functions / "api.py").write_text("def handler(event, context):\n    return {}\n")
    (functions / "worker.py").write_text("def handler(event, context):\n    return {}\n")
    return tmp_path


def write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def localstack_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """scripts/localstack.sh's settings for the test session's LocalStack: free ports, its own state."""
    return {
        "LOCALSTACK_PORT": str(free_port()),
        "LOCALSTACK_REGISTRY_PORT": str(free_port()),
        "LOCALSTACK_STATE_DIR": str(tmp_path_factory.mktemp("localstack")),
    }


@pytest.fixture(scope="session")
def localstack(localstack_env: dict[str, str]) -> Iterator[LocalStackInfo]:
    """A real LocalStack on a free port, with the offline Lambda stand-ins (see scripts/localstack.sh)."""
    # The script runs this venv's lambdakit (stand-ins, bridge address).
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", **localstack_env}
    try:
        started = subprocess.run(
            ["bash", str(SCRIPT), "start", "--lambda-standins"],
            env=env,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"scripts/localstack.sh start did not finish in {START_TIMEOUT_S}s", pytrace=False)
    try:
        if started.returncode != 0:
            pytest.fail(
                f"LocalStack could not be started (scripts/localstack.sh exited {started.returncode}):\n"
                f"{started.stderr[-3000:]}\nRun with -m 'not localstack' to leave these tests out.",
                pytrace=False,
            )
        yield detect_localstack(f"http://127.0.0.1:{localstack_env['LOCALSTACK_PORT']}")
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, timeout=120, check=False)
