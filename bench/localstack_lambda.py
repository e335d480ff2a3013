"""Running Lambda code locally: LocalStack with lambdakit's stand-ins against `sam local invoke`, in one run.

Starts LocalStack on free ports with scripts/localstack.sh --lambda-standins
(stand-in init and runtime image; see the README), creates a small python3.12
function, and prints
  * create-to-Active, the first (cold) invoke, and the median warm invoke;
  * the median of `sam local invoke` of the same handler with the same stand-in
    runtime image (--skip-pull-image): what people run today, a new container
    for every invocation;
and the ratio of the two. Needs the Docker engine and the stand-in images
(make test builds both). Run: .venv/bin/python bench/localstack_lambda.py
"""

from __future__ import annotations

import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
WARM_INVOKES = 20
SAM_INVOKES = 3
HANDLER = "import json\n\ndef handler(event, context):\n    return {'echo': event}\n"
SAM_TEMPLATE = """\
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Resources:
  Echo:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: code/
      Handler: echo.handler
      Runtime: python3.12
      Architectures: [x86_64]
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timed(action) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def localstack_figures(url: str) -> dict[str, float]:
    session = boto3.session.Session(region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
    lambda_ = session.client("lambda", endpoint_url=url)
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("echo.py", HANDLER)
    started = time.perf_counter()
    lambda_.create_function(
        FunctionName="bench-echo",
        Runtime="python3.12",
        Role="arn:aws:iam::000000000000:role/bench",
        Handler="echo.handler",
        Code={"ZipFile": code.getvalue()},
    )
    while lambda_.get_function_configuration(FunctionName="bench-echo")["State"] == "Pending":
        time.sleep(0.05)
    active = time.perf_counter() - started

    def invoke() -> None:
        response = lambda_.invoke(FunctionName="bench-echo", Payload=json.dumps({"n": 1}).encode())
        assert "FunctionError" not in response, response["Payload"].read()
        response["Payload"].read()

    cold = timed(invoke)
    warm = statistics.median(timed(invoke) for _ in range(WARM_INVOKES))
    return {"create to Active": active, "cold invoke": cold, "warm invoke (median)": warm}


def sam_local_invoke_median() -> float:
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch)
        (project / "code").mkdir()
        (project / "code" / "echo.py").write_text(HANDLER)
        (project / "template.yaml").write_text(SAM_TEMPLATE)
        (project / "event.json").write_text(json.dumps({"n": 1}))
        argv = [str(VENV_BIN / "sam"), "local", "invoke", "Echo", "-e", "event.json", "--skip-pull-image"]
        env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}

        def invoke() -> None:
            subprocess.run(argv, cwd=project, env=env, check=True, capture_output=True, timeout=300)

        invoke()  # SAM builds its derived image once; later invocations reuse it
        return statistics.median(timed(invoke) for _ in range(SAM_INVOKES))


def main() -> None:
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
        "LOCALSTACK_PORT": str(port),
        "LOCALSTACK_REGISTRY_PORT": str(free_port()),
        "LOCALSTACK_STATE_DIR": tempfile.mkdtemp(prefix="lambdakit-bench-localstack-"),
    }
    script = ["bash", str(ROOT / "scripts" / "localstack.sh")]
    subprocess.run([*script, "start", "--lambda-standins"], env=env, check=True)
    try:
        figures = localstack_figures(f"http://127.0.0.1:{port}")
    finally:
        subprocess.run([*script, "stop"], env=env, check=False)
    sam = sam_local_invoke_median()
    print("\nLocalStack 2026.3.0 with lambdakit's stand-in init and runtime image (python3.12 x86_64):")
    for name, seconds in figures.items():
        print(f"  {name:<22} {seconds:7.3f} s")
    print(f"sam local invoke (median of {SAM_INVOKES}, stand-in image): {sam:7.3f} s per invocation")
    print(f"  a warm LocalStack invoke takes {figures['warm invoke (median)'] / sam:.3f}x the time")


if __name__ == "__main__":
    main()
