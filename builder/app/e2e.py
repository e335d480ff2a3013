"""e2e: one task through the deployed app (API -> queue -> worker -> database), timed per hop.

The API is reached over HTTP where the destination serves the HTTP API, and by
invoking the API function with an API Gateway (payload 2.0) event where it does
not (LocalStack Community). Either way the app's own code answers.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

import botocore.config
import botocore.exceptions

from builder.app.deploy import Clients, aws_clients, physical_id, stack_state
from builder.app.localstack_info import Fetch, LocalStackInfo, detect_localstack, fetch_json
from builder.app.logs import function_log_lines
from builder.app.plan import DeployOptions, destination_region
from builder.app.samconfig import read_samconfig
from builder.app.template import read_template
from builder.errors import EnvironmentProblem

SCHEMA = 1
HTTP_TIMEOUT_S = 30.0
API_HOP = "api: create task"
READ_HOP = "api: read task"
WORKER_HOP = "queue + worker"
# Log lines of a failing function shown with its diagnosis.
DIAGNOSIS_LOG_LINES = 40
# An SQS event with no records: the worker loads (its handler module imports)
# and answers without touching any message, so the probe changes nothing.
EMPTY_SQS_EVENT: dict[str, Any] = {"Records": []}
POLL_INTERVAL_S = 1.0
# A cold start in LocalStack pulls and starts a container; and an invoke is not
# idempotent (a retried POST creates a second task), so botocore must not retry.
INVOKE_CONFIG = botocore.config.Config(read_timeout=120, retries={"total_max_attempts": 1})


class ApiError(Exception):
    """The API could not be reached or did not answer as the app does."""

    def __init__(self, message: str, *, function_error: str = "", logs: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.function_error = function_error
        self.logs = logs


class Transport(Protocol):
    @property
    def via(self) -> Literal["http", "invoke"]: ...

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """(status code, decoded JSON body)."""
        ...


@dataclass(frozen=True)
class HttpTransport:
    base_url: str
    via: Literal["http", "invoke"] = "http"

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.base_url.rstrip("/") + path,
            data=data,
            method=method,
            headers={"content-type": "application/json", "accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as response:
                return response.status, _decode(response.read())
        except urllib.error.HTTPError as err:
            return err.code, _decode(err.read())
        except OSError as err:
            raise ApiError(f"{method} {self.base_url}{path}: {err}") from err


@dataclass(frozen=True)
class InvokeTransport:
    """The API function invoked directly with the event API Gateway's HTTP API would send."""

    client: Any  # a boto3 Lambda client
    function_name: str
    via: Literal["http", "invoke"] = "invoke"

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        event = http_api_event(method, path, body)
        outcome = invoke(self.client, self.function_name, event)
        if outcome.error:
            message = f"{self.function_name} failed: {outcome.error}"
            raise ApiError(message, function_error=outcome.error, logs=outcome.logs)
        payload = outcome.payload if isinstance(outcome.payload, dict) else {}
        return int(payload.get("statusCode", 0)), _decode(payload.get("body") or b"")


@dataclass(frozen=True, kw_only=True)
class Invoked:
    payload: Any
    error: str  # the function's own error (its errorType and errorMessage); "" when it answered
    logs: tuple[str, ...]  # the tail of its log for this invocation, where the destination returns it


def invoke(client: Any, function_name: str, event: dict[str, Any]) -> Invoked:
    """One synchronous invocation with its log tail (LogType=Tail: the last 4 KB on AWS)."""
    try:
        payload = json.dumps(event).encode()
        response = client.invoke(FunctionName=function_name, Payload=payload, LogType="Tail")
    except Exception as err:  # botocore raises many types; all mean the function did not answer
        raise ApiError(f"invoking {function_name}: {err}") from err
    payload = _decode(response["Payload"].read())
    logs = tuple(base64.b64decode(response.get("LogResult") or "").decode(errors="replace").splitlines())
    error = ""
    if response.get("FunctionError"):
        if isinstance(payload, dict) and "errorMessage" in payload:
            kind = payload.get("errorType") or response["FunctionError"]
            error = f"{kind}: {payload['errorMessage']}"
        else:
            error = f"{response['FunctionError']}: {payload}"
    return Invoked(payload=payload, error=error, logs=logs)


def http_api_event(method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event, as Mangum reads it."""
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "lambdakit-e2e"},
        "requestContext": {
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "lambdakit-e2e",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


def _decode(raw: bytes | str) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace") if isinstance(raw, bytes) else raw


@dataclass(frozen=True, kw_only=True)
class Hop:
    name: str
    seconds: float
    detail: str = ""


@dataclass(frozen=True, kw_only=True)
class Diagnosis:
    """What the function behind a failed hop says for itself."""

    function: str
    error: str  # its own error, "" when it answered
    logs: tuple[str, ...]  # its recent log lines


@dataclass(frozen=True, kw_only=True)
class E2EResult:
    via: str
    ok: bool
    task_id: str | None
    status: str  # the task's last status, or "" when it was never created
    reason: str  # why it failed; "" when ok
    failed_hop: str = ""  # the hop that failed, "" when ok
    hops: list[Hop] = field(default_factory=list)
    diagnosis: Diagnosis | None = None

    def to_dict(self) -> dict[str, object]:
        return {"schema": SCHEMA, **asdict(self)}


def run_e2e(
    transport: Transport,
    *,
    timeout_s: float,
    poll_interval_s: float = POLL_INTERVAL_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> E2EResult:
    """POST a task, then GET it until the worker has completed it or timeout_s has passed."""
    hops: list[Hop] = []

    def failed(
        hop: str, reason: str, task_id: str | None = None, status: str = "", api_error: ApiError | None = None
    ) -> E2EResult:
        diagnosis = None
        if api_error is not None and api_error.function_error:
            diagnosis = Diagnosis(
                function=getattr(transport, "function_name", ""),
                error=api_error.function_error,
                logs=api_error.logs,
            )
        return E2EResult(
            via=transport.via,
            ok=False,
            task_id=task_id,
            status=status,
            reason=reason,
            failed_hop=hop,
            hops=hops,
            diagnosis=diagnosis,
        )

    start = clock()
    name = f"lambdakit-e2e-{uuid.uuid4().hex[:8]}"
    try:
        code, body = transport.request("POST", "/tasks", {"name": name, "payload": {"e2e": True}})
    except ApiError as err:
        return failed(API_HOP, f"the API did not answer: {err}", api_error=err)
    created = clock()
    hops.append(Hop(name=API_HOP, seconds=round(created - start, 3), detail=f"HTTP {code}"))
    if code != 201 or not isinstance(body, dict) or "id" not in body:
        return failed(API_HOP, f"POST /tasks answered {code}: {body}")
    task_id = str(body["id"])
    status, polls = str(body.get("status", "")), 0
    deadline = created + timeout_s
    while status != "completed" and clock() < deadline:
        sleep(poll_interval_s)
        polls += 1
        try:
            code, body = transport.request("GET", f"/tasks/{task_id}")
        except ApiError as err:
            return failed(READ_HOP, f"reading the task failed: {err}", task_id, status, api_error=err)
        if code != 200 or not isinstance(body, dict):
            return failed(READ_HOP, f"GET /tasks/{task_id} answered {code}: {body}", task_id, status)
        status = str(body.get("status", ""))
    done = clock()
    detail = f"{polls} polls, last status {status}"
    if status != "completed":
        hops.append(Hop(name=WORKER_HOP, seconds=round(done - created, 3), detail=detail))
        error = body.get("error") if isinstance(body, dict) else None
        reason = f"task {task_id} still {status or 'unknown'} after {timeout_s:g}s"
        return failed(WORKER_HOP, reason + (f" (last error: {error})" if error else ""), task_id, status)
    hops.append(Hop(name=f"{WORKER_HOP}: completed", seconds=round(done - created, 3), detail=detail))
    # The polled time includes up to one poll interval; the rows' own timestamps do not.
    with suppress(KeyError, TypeError, ValueError):
        took = datetime.fromisoformat(body["updated_at"]) - datetime.fromisoformat(body["created_at"])
        hops.append(Hop(name="queue + worker (database clock)", seconds=round(took.total_seconds(), 3)))
    return E2EResult(via=transport.via, ok=True, task_id=task_id, status=status, reason="", hops=hops)


def api_transport(
    *, outputs: dict[str, str], http_api: bool, lambda_client: Any, api_function: str | None
) -> Transport:
    """HTTP when the destination serves the HTTP API and the stack says where; else invoke the function."""
    url = outputs.get("ApiUrl", "")
    if http_api and url and "unknown" not in url:
        return HttpTransport(url)
    if api_function is None:
        raise EnvironmentProblem(
            "the target has no HTTP API and the stack has no API function to invoke",
            hint="deploy first: lambdakit deploy",
            step="e2e",
        )
    return InvokeTransport(lambda_client, api_function)


def e2e(
    options: DeployOptions,
    *,
    timeout_s: float,
    fetch: Fetch = fetch_json,
    clients: Callable[[str, LocalStackInfo | None], Clients] = aws_clients,
) -> E2EResult:
    """Find the deployed stack of the samconfig environment, then run one task through it."""
    environment = read_samconfig(options.project / "samconfig.toml", options.config_env)
    on_localstack = options.destination == "localstack"
    localstack = detect_localstack(options.endpoint_url, fetch) if on_localstack else None
    client = clients(destination_region(options.destination, environment), localstack)
    status, outputs = stack_state(client("cloudformation"), environment.stack_name)
    if not status:
        raise EnvironmentProblem(
            f"stack {environment.stack_name} does not exist on {options.destination}",
            hint=f"deploy it first: lambdakit deploy --target {options.destination} --env {environment.name}",
            step="e2e",
        )
    app = read_template(options.project / "template.yaml", environment.parameters)
    api = next((f.logical_id for f in app.functions if f.http_api), None)
    api_function = None
    if api is not None:
        api_function = physical_id(client("cloudformation"), environment.stack_name, api)
    http_api = localstack is None or localstack.http_api
    lambda_client = client("lambda", INVOKE_CONFIG)
    transport = api_transport(
        outputs=outputs, http_api=http_api, lambda_client=lambda_client, api_function=api_function
    )
    started_ms = int(time.time() * 1000)
    result = run_e2e(transport, timeout_s=timeout_s)
    worker = next((f.logical_id for f in app.functions if f.consumes_queue), None)
    if result.failed_hop == WORKER_HOP and worker is not None:
        name = physical_id(client("cloudformation"), environment.stack_name, worker)
        diagnosis = diagnose_worker(lambda_client, client("logs"), name, since_ms=started_ms)
        result = dataclasses.replace(result, diagnosis=diagnosis)
    return result


def diagnose_worker(lambda_client: Any, logs_client: Any, function_name: str, *, since_ms: int) -> Diagnosis:
    """The worker's own error (it is invoked with an empty batch) and its log lines since since_ms."""
    try:
        probe = invoke(lambda_client, function_name, EMPTY_SQS_EVENT)
        error, tail = probe.error, probe.logs
    except ApiError as err:
        error, tail = str(err), ()
    lines = recent_log_lines(logs_client, function_name, since_ms=since_ms)
    return Diagnosis(function=function_name, error=error, logs=tuple(lines or tail)[-DIAGNOSIS_LOG_LINES:])


def recent_log_lines(logs_client: Any, function_name: str, *, since_ms: int) -> list[str]:
    """The function's log lines since since_ms; [] when they cannot be read: the probe's tail stands alone."""
    try:
        return function_log_lines(logs_client, function_name, since_ms)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
        return []
