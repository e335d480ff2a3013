"""doctor's checks, each on what the test controls (a listening socket, a fake LocalStack, PATH), and the
real command's exit code when a required or only an optional check fails."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from builder.app import doctor
from builder.app.deploy import aws_clients
from builder.app.destination import DEFAULT_LOCALSTACK_URL
from builder.app.doctor import (
    RECENT_ERRORS_S,
    DoctorReport,
    Finding,
    check_deployed_functions,
    check_function_logs,
    check_interpreter,
    check_localstack,
    check_postgres,
    check_tool,
    diagnose_command,
)
from builder.errors import EXIT_OK, EXIT_USAGE
from builder.runtimes import all_targets, target

from .conftest import free_port


def test_postgres_reachable_and_not() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert check_postgres("127.0.0.1", str(port)).ok
    missing = check_postgres("127.0.0.1", str(free_port()), timeout_s=0.5)
    assert not missing.ok
    assert "docker compose up -d postgres" in missing.fix
    garbled = check_postgres("127.0.0.1", "54x2")
    assert (garbled.ok, garbled.detail) == (False, "PGPORT is not a port number")


def test_localstack_line_says_what_deploy_and_e2e_will_do() -> None:
    pages = {
        "/_localstack/health": {"services": {"sqs": "running"}},
        "/_localstack/info": {"version": "4.14.0", "edition": "community"},
    }
    check = check_localstack("http://ls", lambda url: pages[url.removeprefix("http://ls")])
    assert check.ok
    assert "community" in check.detail
    assert "deploy copies layers into function packages" in check.detail
    assert "e2e invokes the API function" in check.detail

    def down(url: str) -> dict:
        raise OSError("connection refused")

    missing = check_localstack("http://ls", down)
    assert not missing.ok and missing.optional
    assert "scripts/localstack.sh start" in missing.fix


def test_tool_missing_or_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "find_tool", lambda name: None)
    assert check_tool("samlocal", "pip install aws-sam-cli-local", optional=True) == Finding(
        name="samlocal", ok=False, detail="not installed", fix="pip install aws-sam-cli-local", optional=True
    )
    fake = tmp_path / "sam"
    fake.write_text("#!/bin/sh\necho 'SAM CLI, version 9.9.9'\n")
    fake.chmod(0o755)
    monkeypatch.setattr(doctor, "find_tool", lambda name: str(fake))
    found = check_tool("sam", "pip install aws-sam-cli")
    assert found.ok
    assert found.detail.startswith("SAM CLI, version 9.9.9")


def test_interpreter_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "find_interpreter", lambda version: None)
    line = check_interpreter(target("python3.14", "x86_64"), needed=False)
    assert not line.ok and line.optional
    assert line.fix == "pyenv install 3.14"
    assert "not verified" in line.detail


def test_only_required_checks_decide() -> None:
    optional_missing = Finding(name="samlocal", ok=False, detail="", optional=True)
    assert DoctorReport(findings=(Finding(name="sam", ok=True, detail=""), optional_missing)).ok
    assert not DoctorReport(findings=(Finding(name="sam", ok=False, detail=""),)).ok
    assert DoctorReport(findings=()).to_dict() == {"schema": 1, "ok": True, "checks": []}


# --- `lambdakit doctor` end to end: the real command in a subprocess, its inputs pointed by the test ---


def _runtime_without_system_interpreter() -> str:
    """A catalogue version find_interpreter cannot find once PYENV_ROOT is empty: none in /usr/bin or
    /usr/local/bin (those two are always searched, so the test cannot hide them)."""
    for t in all_targets():
        if not any(Path(d, f"python{t.version}").exists() for d in ("/usr/bin", "/usr/local/bin")):
            return t.version
    pytest.skip("every catalogue Python has a system interpreter here: no required check can be made to fail")


def _run_doctor(project: Path, pyenv_root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m builder doctor` with every optional service pointed at something dead.

    Docker at a socket that does not exist, LocalStack and PostgreSQL at closed ports: those
    optional checks fail, fast, whatever this machine runs. PYENV_ROOT decides which
    interpreters doctor finds. A `sam` that answers --version sits first on PATH so the required
    sam check passes even where the venv has none (doctor prefers the venv's own sam).
    """
    bin_dir = project / "fake-bin"
    bin_dir.mkdir(exist_ok=True)
    sam = bin_dir / "sam"
    sam.write_text("#!/bin/sh\necho 'SAM CLI, version 9.9.9'\n")
    sam.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYENV_ROOT": str(pyenv_root),
        "DOCKER_HOST": f"unix://{project / 'no-docker.sock'}",
        "PGHOST": "127.0.0.1",
        "PGPORT": str(free_port()),
        # urllib would send the LocalStack probe to a configured proxy, which may answer.
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    argv = [sys.executable, "-m", "builder", "doctor", "--project-dir", str(project)]
    argv += ["--endpoint-url", f"http://127.0.0.1:{free_port()}", *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=project, timeout=120)


def _fake_pyenv(root: Path, version: str) -> Path:
    """A PYENV_ROOT holding an executable pythonX.Y: all find_interpreter asks of one."""
    interpreter = root / "versions" / f"{version}.99" / "bin" / f"python{version}"
    interpreter.parent.mkdir(parents=True)
    interpreter.write_text("#!/bin/sh\nexit 0\n")
    interpreter.chmod(0o755)
    return root


def test_doctor_exits_2_naming_the_missing_required_interpreter_and_its_fix(
    project: Path, tmp_path: Path
) -> None:
    # The app's runtime decides which interpreter is required: one this machine cannot offer.
    version = _runtime_without_system_interpreter()
    template = project / "template.yaml"
    template.write_text(template.read_text().replace("Runtime: python3.12", f"Runtime: python{version}"))
    empty_pyenv = tmp_path / "empty-pyenv"
    empty_pyenv.mkdir()

    proc = _run_doctor(project, empty_pyenv)
    assert proc.returncode == EXIT_USAGE, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    missing = [i for i, line in enumerate(lines) if line.startswith("MISSING ")]
    # Only the interpreter is required and absent: sam answers, the rest is optional.
    assert len(missing) == 1, proc.stdout
    assert f"python{version} interpreter: none" in lines[missing[0]]
    assert lines[missing[0] + 1].split() == ["fix:", "pyenv", "install", version]
    assert proc.stderr == ""

    proc = _run_doctor(project, empty_pyenv, "--json")
    assert proc.returncode == EXIT_USAGE, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["schema"] == 1 and report["ok"] is False
    failed_required = [c for c in report["checks"] if not c["ok"] and not c["optional"]]
    assert failed_required == [
        {
            "name": f"python{version} interpreter",
            "ok": False,
            "optional": False,
            "detail": failed_required[0]["detail"],
            "fix": f"pyenv install {version}",
        }
    ]
    assert "not verified" in failed_required[0]["detail"]


def test_doctor_exits_0_when_only_optional_checks_fail(project: Path, tmp_path: Path) -> None:
    # The project's runtime is python3.12: give doctor that interpreter and nothing else it needs.
    pyenv = _fake_pyenv(tmp_path / "pyenv", "3.12")

    proc = _run_doctor(project, pyenv)
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    assert not any(line.startswith("MISSING ") for line in proc.stdout.splitlines()), proc.stdout
    optional_missing = {
        line.split(": ", 1)[0].removeprefix("missing (optional)").strip()
        for line in proc.stdout.splitlines()
        if line.startswith("missing (optional)")
    }
    # The dead services were seen as missing, so exit 0 is the optional rule, not a lucky machine.
    assert {"docker engine", "localstack"} <= optional_missing, proc.stdout
    assert any(name.startswith("postgresql 127.0.0.1:") for name in optional_missing), proc.stdout
    assert "python3.12 interpreter" not in optional_missing

    proc = _run_doctor(project, pyenv, "--json")
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    failed = [c for c in report["checks"] if not c["ok"]]
    assert failed and all(c["optional"] for c in failed)
    found = {c["name"]: c for c in report["checks"]}
    assert found["sam"]["ok"] and not found["sam"]["optional"]
    assert found["python3.12 interpreter"]["ok"] and not found["python3.12 interpreter"]["optional"]
    assert "scripts/ensure-docker.sh" in found["docker engine"]["fix"]


# --- deployed functions' logs: errors point to `lambdakit validate --deployed` (moto's CloudWatch Logs) ---

IMPORT_ERROR = (
    "[ERROR] Runtime.ImportModuleError: Unable to import module 'worker': No module named 'psycopg2._psycopg'"
)
ROLE_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
]})  # fmt: skip
FUNCTION_TEMPLATE = json.dumps({"Resources": {
    "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": json.loads(ROLE_POLICY)}},
    "WorkerFunction": {"Type": "AWS::Lambda::Function", "Properties": {
        "FunctionName": "mini-local-worker", "Runtime": "python3.12", "Handler": "worker.handler",
        "Role": {"Fn::GetAtt": ["Role", "Arn"]}, "Code": {"ZipFile": "def handler(e, c):\n    return 1\n"},
    }},
}})  # fmt: skip
COMMUNITY = {
    "/_localstack/health": {"services": {"lambda": "running", "logs": "running"}},
    "/_localstack/info": {"version": "4.14.0", "edition": "community", "is_docker": True},
}


def fake_localstack(url: str) -> dict:
    return COMMUNITY[url.removeprefix("http://ls")]


def moto_clients(region: str, localstack: object) -> Any:
    """What aws_clients gives for LocalStack, answered by moto (which intercepts AWS's endpoints only)."""
    return aws_clients(region, None)


def log(group: str, *events: tuple[int, str]) -> None:
    logs = boto3.client("logs", region_name="us-east-1")
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="2026/01/01/[$LATEST]abc")
    logs.put_log_events(
        logGroupName=group,
        logStreamName="2026/01/01/[$LATEST]abc",
        logEvents=[{"timestamp": at, "message": message} for at, message in events],
    )


@pytest.fixture
def deployed(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The project's localstack stack (mini-local) deployed with its worker function, in moto."""
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        cloudformation = boto3.client("cloudformation", region_name="us-east-1")
        cloudformation.create_stack(StackName="mini-local", TemplateBody=FUNCTION_TEMPLATE)
        yield project


def test_a_function_that_logged_an_import_error_is_named_with_the_command_that_diagnoses_it(
    deployed: Path,
) -> None:
    deployed_at = int(time.time() * 1000)
    log(
        "/aws/lambda/mini-local-worker",
        (deployed_at + 1000, "START RequestId: 1"),
        (deployed_at + 2000, IMPORT_ERROR),
    )
    now = deployed_at + 3000

    [finding] = check_deployed_functions(
        deployed, "http://ls", fetch=fake_localstack, clients=moto_clients, now_ms=now
    )
    assert (finding.name, finding.ok, finding.optional) == ("WorkerFunction logs", False, True)
    assert (
        finding.fix
        == "lambdakit validate --deployed mini-local-worker --target localstack --endpoint-url http://ls"
    )
    assert "mini-local-worker logged 1 error line in the last 15 minutes" in finding.detail
    assert finding.detail.endswith("No module named 'psycopg2._psycopg'")

    lambda_client = boto3.client("lambda", region_name="us-east-1")
    logs_client = boto3.client("logs", region_name="us-east-1")
    default = check_function_logs(
        lambda_client, logs_client, "WorkerFunction", "mini-local-worker", now_ms=now,
        endpoint_url=DEFAULT_LOCALSTACK_URL,
    )  # fmt: skip
    assert default.fix == "lambdakit validate --deployed mini-local-worker --target localstack"


def test_errors_before_the_window_or_the_last_update_are_history(deployed: Path) -> None:
    now = int(time.time() * 1000)
    # Within the window but before the function's code was deployed, and a Traceback long ago.
    log(
        "/aws/lambda/mini-local-worker",
        (now - (RECENT_ERRORS_S + 60) * 1000, "Traceback (most recent call last):"),
        (now - 60_000, "Task timed out after 3.00 seconds"),
        (now + 1000, "END RequestId: 2"),
    )
    [finding] = check_deployed_functions(deployed, "http://ls", fetch=fake_localstack, clients=moto_clients)
    assert finding.ok, finding
    assert "no errors logged in the last 15 minutes" in finding.detail

    # The same timeout once the code has not changed since: it counts.
    later = now + 120_000
    lambda_client = boto3.client("lambda", region_name="us-east-1")
    logs_client = boto3.client("logs", region_name="us-east-1")
    logs_client.put_log_events(
        logGroupName="/aws/lambda/mini-local-worker",
        logStreamName="2026/01/01/[$LATEST]abc",
        logEvents=[{"timestamp": later - 1000, "message": "2026-01-01 Task timed out after 3.00 seconds"}],
    )
    found = check_function_logs(
        lambda_client,
        logs_client,
        "WorkerFunction",
        "mini-local-worker",
        now_ms=later,
        endpoint_url="http://ls",
    )
    assert not found.ok and "Task timed out" in found.detail


def test_a_function_with_no_log_group_has_logged_no_errors(deployed: Path) -> None:
    [finding] = check_deployed_functions(deployed, "http://ls", fetch=fake_localstack, clients=moto_clients)
    assert finding.ok and finding.fix == ""


def test_deployed_functions_not_checked_says_why(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    def down(url: str) -> dict:
        raise OSError("connection refused")

    [no_localstack] = check_deployed_functions(project, "http://ls", fetch=down, clients=moto_clients)
    assert (no_localstack.ok, no_localstack.optional) == (False, True)
    assert no_localstack.detail.startswith("not checked: LocalStack does not answer at http://ls")

    [no_samconfig] = check_deployed_functions(
        tmp_path_factory.mktemp("no-project"), "http://ls", fetch=fake_localstack, clients=moto_clients
    )
    assert no_samconfig.detail.startswith("not checked: cannot read") and not no_samconfig.ok

    with mock_aws():
        [no_stack] = check_deployed_functions(
            project, "http://ls", fetch=fake_localstack, clients=moto_clients
        )
    assert no_stack.detail == (
        "not checked: stack mini-local is not deployed at http://ls (lambdakit deploy) (LocalStack only)"
    )
    assert DoctorReport(findings=(no_stack,)).ok  # informational: never fails doctor


def test_the_command_doctor_prints_keeps_a_region_other_than_localstacks_default() -> None:
    assert diagnose_command("fn", DEFAULT_LOCALSTACK_URL, "us-east-1") == (
        "lambdakit validate --deployed fn --target localstack"
    )
    assert diagnose_command("fn", "http://ls:4566", "eu-west-1") == (
        "lambdakit validate --deployed fn --target localstack --endpoint-url http://ls:4566"
        " --region eu-west-1"
    )
