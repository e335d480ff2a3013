"""doctor: what this machine has for building, checking and deploying, each with the fix.

Every check is a small function returning one Finding; none raises. A check that
only some workflows need is optional: it is reported, but does not fail doctor.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import botocore.exceptions

from builder.app.deploy import Clients, aws_clients
from builder.app.destination import DEFAULT_LOCALSTACK_URL
from builder.app.localstack_info import (
    LOCALSTACK_REGION,
    Fetch,
    LocalStackInfo,
    detect_localstack,
    fetch_json,
)
from builder.app.logs import function_log_lines
from builder.app.plan import destination_region, find_tool
from builder.app.samconfig import read_samconfig
from builder.app.template import read_template
from builder.docker import container, images
from builder.errors import LambdakitError
from builder.host import find_interpreter
from builder.runtimes import DEFAULT_ARCH, DEFAULT_RUNTIME, Target, all_targets, target

SCHEMA = 1
VERSION_TIMEOUT_S = 60
# The samconfig.toml environment whose stack is looked at: the one `lambdakit deploy` uses for LocalStack.
LOCALSTACK_ENV = "localstack"
# How a failure reaches a function's log: Lambda's Python runtime writes an unhandled exception as
# "[ERROR] ..." with its "Traceback", a handler module that cannot be imported as
# Runtime.ImportModuleError, and the sandbox a timeout as "Task timed out after N seconds".
ERROR_MARKERS = ("[ERROR]", "Runtime.ImportModuleError", "Task timed out", "Traceback")
# "Recent" is 15 minutes: a deploy and what is tried right after it (an e2e run, a queue's
# redeliveries: maxReceiveCount 3 times a visibility timeout of a few minutes). Older lines are
# history. Lines from before the function's code last changed are left out whatever the window:
# they describe code that is no longer deployed.
RECENT_ERRORS_S = 15 * 60
# A log line shown in a finding is cut to this many characters.
SHOWN_LINE_CHARS = 200


@dataclass(frozen=True, kw_only=True)
class Finding:
    name: str
    ok: bool
    detail: str  # what was found, or what is missing
    fix: str = ""  # what to run when it is missing
    optional: bool = False  # needed by some workflows only

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class DoctorReport:
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return all(finding.ok or finding.optional for finding in self.findings)

    def to_dict(self) -> dict[str, object]:
        return {"schema": SCHEMA, "ok": self.ok, "checks": [finding.to_dict() for finding in self.findings]}


def check_docker() -> Finding:
    # Optional: without it builds use the uv or pip backend and imports are checked in a local interpreter.
    try:
        version = container.connect().version().get("Version", "?")
    except LambdakitError as err:
        return Finding(name="docker engine", ok=False, detail=err.message, fix=err.hint, optional=True)
    return Finding(name="docker engine", ok=True, detail=f"Docker {version}", optional=True)


def check_image(name: str, docker_platform: str, *, optional: bool) -> Finding:
    availability = images.image_availability(name, docker_platform)
    if availability.ok:
        return Finding(name=f"image {name}", ok=True, detail=availability.reason, optional=optional)
    return Finding(
        name=f"image {name}",
        ok=False,
        detail=availability.reason,
        fix=images.missing_image_hint(name),
        optional=optional,
    )


def check_tool(name: str, fix: str, *, optional: bool = False, env: dict[str, str] | None = None) -> Finding:
    tool = find_tool(name)
    if tool is None:
        return Finding(name=name, ok=False, detail="not installed", fix=fix, optional=optional)
    try:
        proc = subprocess.run(
            [tool, "--version"],
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT_S,
            env={**os.environ, **(env or {})},
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return Finding(name=name, ok=False, detail=f"{tool} does not run: {err}", fix=fix, optional=optional)
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    if proc.returncode != 0 or not lines:
        detail = f"{tool} --version exited with {proc.returncode}"
        return Finding(name=name, ok=False, detail=detail, fix=fix, optional=optional)
    return Finding(name=name, ok=True, detail=f"{lines[-1]} ({tool})", optional=optional)


def check_localstack(url: str, fetch: Fetch = fetch_json) -> Finding:
    try:
        info = detect_localstack(url, fetch)
    except LambdakitError as err:
        return Finding(name="localstack", ok=False, detail=err.message, fix=err.hint, optional=True)
    notes = []
    if not info.applies_layers:
        notes.append("deploy copies layers into function packages")
    if not info.http_api:
        notes.append("e2e invokes the API function")
    suffix = f" ({'; '.join(notes)})" if notes else ""
    return Finding(name="localstack", ok=True, detail=info.describe() + suffix, optional=True)


def check_postgres(host: str, port: str, *, timeout_s: float = 2.0) -> Finding:
    name = f"postgresql {host}:{port}"
    if not port.isdigit():
        return Finding(
            name=name, ok=False, detail="PGPORT is not a port number", fix="fix PGPORT", optional=True
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as err:
        return Finding(
            name=name,
            ok=False,
            detail=f"no answer ({err})",
            fix="docker compose up -d postgres, or start a local server (pg_ctlcluster 15 main start); "
            "PGHOST and PGPORT choose where to look",
            optional=True,
        )
    return Finding(name=name, ok=True, detail="accepts connections", optional=True)


def check_interpreter(t: Target, *, needed: bool) -> Finding:
    interpreter = find_interpreter(t.version)
    name = f"python{t.version} interpreter"
    if interpreter is None:
        return Finding(
            name=name,
            ok=False,
            detail=f"none: imports for {t.runtime} are reported 'not verified' without a runtime image",
            fix=f"pyenv install {t.version}",
            optional=not needed,
        )
    return Finding(name=name, ok=True, detail=str(interpreter), optional=not needed)


def diagnose_command(function: str, endpoint_url: str, region: str) -> str:
    """The command that validates a deployed function as Lambda assembles it (its code and layers)."""
    command = f"lambdakit validate --deployed {function} --target localstack"
    if endpoint_url.rstrip("/") != DEFAULT_LOCALSTACK_URL:
        command += f" --endpoint-url {endpoint_url}"
    if region != LOCALSTACK_REGION:
        command += f" --region {region}"
    return command


def error_lines(lines: Iterable[str]) -> list[str]:
    return [line for line in lines if any(marker in line for marker in ERROR_MARKERS)]


def _epoch_ms(timestamp: object) -> int:
    """Lambda's LastModified (2024-05-01T12:00:00.000+0000) in milliseconds; 0 when unreadable."""
    try:
        return int(datetime.fromisoformat(str(timestamp)).timestamp() * 1000)
    except ValueError:
        return 0


def check_function_logs(
    lambda_client: Any,
    logs_client: Any,
    logical_id: str,
    function: str,
    *,
    now_ms: int,
    endpoint_url: str,
    region: str = LOCALSTACK_REGION,
) -> Finding:
    """Whether a deployed function logged errors recently, and if so the command that diagnoses it."""
    name = f"{logical_id} logs"
    window = f"the last {RECENT_ERRORS_S // 60} minutes"
    try:
        config = lambda_client.get_function_configuration(FunctionName=function)
        since_ms = max(now_ms - RECENT_ERRORS_S * 1000, _epoch_ms(config.get("LastModified")))
        lines = function_log_lines(logs_client, function, since_ms)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as err:
        return Finding(name=name, ok=False, detail=f"not checked: {function}: {err}", optional=True)
    errors = error_lines(lines)
    if not errors:
        detail = f"{function}: no errors logged in {window} (nor since its code last changed)"
        return Finding(name=name, ok=True, detail=detail, optional=True)
    return Finding(
        name=name,
        ok=False,
        detail=f"{function} logged {len(errors)} error line{'' if len(errors) == 1 else 's'} in {window}, "
        "the latest: "
        f"{errors[-1][:SHOWN_LINE_CHARS]}",
        fix=diagnose_command(function, endpoint_url, region),
        optional=True,
    )


def check_deployed_functions(
    project: Path,
    endpoint_url: str,
    config_env: str = LOCALSTACK_ENV,
    *,
    fetch: Fetch = fetch_json,
    clients: Callable[[str, LocalStackInfo | None], Clients] = aws_clients,
    now_ms: int | None = None,
) -> list[Finding]:
    """One finding per function of the project's stack on LocalStack (only there: doctor looks at
    this machine), or one saying why none was checked."""

    def not_checked(why: str) -> list[Finding]:
        detail = f"not checked: {why} (LocalStack only)"
        return [Finding(name="deployed functions' logs", ok=False, detail=detail, optional=True)]

    try:
        environment = read_samconfig(project / "samconfig.toml", config_env)
        localstack = detect_localstack(endpoint_url, fetch)
        region = destination_region("localstack", environment)
        client = clients(region, localstack)
    except LambdakitError as err:
        return not_checked(err.message)
    stack = environment.stack_name
    try:
        paginator = client("cloudformation").get_paginator("list_stack_resources")
        functions = [
            (resource["LogicalResourceId"], resource["PhysicalResourceId"])
            for page in paginator.paginate(StackName=stack)
            for resource in page.get("StackResourceSummaries", [])
            if resource.get("ResourceType") == "AWS::Lambda::Function" and resource.get("PhysicalResourceId")
        ]
        lambda_client, logs_client = client("lambda"), client("logs")
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, LambdakitError) as err:
        if "does not exist" in str(err):
            return not_checked(f"stack {stack} is not deployed at {localstack.url} (lambdakit deploy)")
        return not_checked(f"cannot list stack {stack}'s resources: {err}")
    if not functions:
        return not_checked(f"stack {stack} has no functions")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    return [
        check_function_logs(
            lambda_client, logs_client, logical_id, name, now_ms=now, endpoint_url=endpoint_url, region=region
        )
        for logical_id, name in functions
    ]


def app_target(project: Path) -> Target:
    """The template's runtime and architecture; the defaults when there is no readable template
    or its functions run on several."""
    try:
        single = read_template(project / "template.yaml").single_target
    except LambdakitError:
        single = None
    return single or target(DEFAULT_RUNTIME, DEFAULT_ARCH)


def doctor(
    project: Path = Path(),
    *,
    endpoint_url: str = DEFAULT_LOCALSTACK_URL,
    config_env: str = LOCALSTACK_ENV,
    environ: Mapping[str, str] = os.environ,
) -> DoctorReport:
    app = app_target(project)
    found = [
        check_docker(),
        check_image(app.runtime_image, app.arch.docker_platform, optional=True),
        check_image(app.build_image, app.arch.docker_platform, optional=True),
        check_tool("sam", "pip install aws-sam-cli"),
        check_tool(
            "samlocal",
            "pip install aws-sam-cli-local (optional: deploy uses sam with AWS_ENDPOINT_URL without it)",
            optional=True,
            env={"DISABLE_DEPRECATION_NOTICE": "1"},
        ),
        check_localstack(endpoint_url),
        check_postgres(environ.get("PGHOST", "127.0.0.1"), environ.get("PGPORT", "5432")),
        *check_deployed_functions(project, endpoint_url, config_env),
    ]
    seen = set()
    for t in all_targets():
        if t.version not in seen:
            seen.add(t.version)
            found.append(check_interpreter(t, needed=t.version == app.version))
    return DoctorReport(findings=tuple(found))
