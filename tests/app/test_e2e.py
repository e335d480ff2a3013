"""e2e's logic: one task created and polled, over real HTTP (a local stand-in API) or an invoke."""

from __future__ import annotations

import base64
import io
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from builder.app.e2e import (
    ApiError,
    HttpTransport,
    InvokeTransport,
    api_transport,
    http_api_event,
    run_e2e,
)
from builder.errors import EnvironmentProblem


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class ScriptedApi:
    """Answers POST /tasks, then reports the task pending until `completes_after` reads."""

    via = "http"

    def __init__(self, completes_after: int) -> None:
        self.completes_after = completes_after
        self.reads = 0
        self.task_id = str(uuid.uuid4())

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        if method == "POST" and path == "/tasks":
            assert body is not None and body["name"].startswith("lambdakit-e2e-")
            return 201, {"id": self.task_id, "status": "pending"}
        if method == "GET" and path == f"/tasks/{self.task_id}":
            self.reads += 1
            done = self.reads >= self.completes_after
            times = {
                "created_at": "2026-01-01T10:00:00+00:00",
                "updated_at": "2026-01-01T10:00:01.250000+00:00",
            }
            return 200, {
                "id": self.task_id,
                "status": "completed" if done else "pending",
                "error": None,
                **times,
            }
        return 404, {"detail": "not found"}


def test_task_completes_with_hops_timed() -> None:
    clock = FakeClock()
    api = ScriptedApi(completes_after=3)
    result = run_e2e(api, timeout_s=10, poll_interval_s=0.5, clock=clock, sleep=clock.sleep)
    assert result.ok
    assert result.task_id == api.task_id
    assert [hop.name for hop in result.hops] == [
        "api: create task",
        "queue + worker: completed",
        "queue + worker (database clock)",
    ]
    assert result.hops[1].seconds == 1.5
    assert result.hops[2].seconds == 1.25
    assert result.hops[1].detail == "3 polls, last status completed"


def test_task_not_completed_in_time() -> None:
    clock = FakeClock()
    result = run_e2e(
        ScriptedApi(completes_after=100), timeout_s=2, poll_interval_s=0.5, clock=clock, sleep=clock.sleep
    )
    assert not result.ok
    assert result.status == "pending"
    assert "still pending after 2s" in result.reason


def test_api_that_does_not_answer() -> None:
    class Down:
        via = "invoke"

        def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
            raise ApiError("connection refused")

    result = run_e2e(Down(), timeout_s=1)
    assert not result.ok
    assert result.reason == "the API did not answer: connection refused"
    assert result.task_id is None


class TaskServer(BaseHTTPRequestHandler):
    tasks: ClassVar[dict[str, dict[str, Any]]] = {}

    def _reply(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        new = json.loads(self.rfile.read(int(self.headers["content-length"])))
        task = {"id": str(uuid.uuid4()), "name": new["name"], "status": "pending", "reads": 0}
        self.tasks[task["id"]] = task
        self._reply(201, task)

    def do_GET(self) -> None:
        task = self.tasks.get(self.path.rsplit("/", 1)[-1])
        if task is None:
            self._reply(404, {"detail": "no such task"})
            return
        task["reads"] += 1
        if task["reads"] >= 2:
            task["status"] = "completed"
        self._reply(200, task)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), TaskServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_over_real_http(api_url: str) -> None:
    result = run_e2e(HttpTransport(api_url), timeout_s=10, poll_interval_s=0.01)
    assert result.ok, result.reason
    assert result.via == "http"
    assert result.hops[1].detail == "2 polls, last status completed"


def test_http_errors_are_answers_not_exceptions(api_url: str) -> None:
    assert HttpTransport(api_url).request("GET", "/tasks/unknown") == (404, {"detail": "no such task"})
    with pytest.raises(ApiError):
        HttpTransport("http://127.0.0.1:9").request("GET", "/health")


class FakeLambda:
    def __init__(self, response: dict[str, Any], error: str | None = None) -> None:
        self.response, self.error, self.events = response, error, []

    def invoke(self, FunctionName: str, Payload: bytes, LogType: str = "None") -> dict[str, Any]:
        self.events.append(json.loads(Payload))
        answer: dict[str, Any] = {"Payload": io.BytesIO(json.dumps(self.response).encode())}
        if LogType == "Tail":
            answer["LogResult"] = base64.b64encode(b"START RequestId: r1\nfrom the handler\n").decode()
        if self.error:
            answer["FunctionError"] = self.error
        return answer


def test_invoke_sends_an_http_api_event_and_reads_the_proxy_response() -> None:
    client = FakeLambda({"statusCode": 201, "body": json.dumps({"id": "t1", "status": "pending"})})
    code, body = InvokeTransport(client, "api-fn").request("POST", "/tasks", {"name": "x"})
    assert (code, body) == (201, {"id": "t1", "status": "pending"})
    event = client.events[0]
    assert event["version"] == "2.0"
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["rawPath"] == "/tasks"
    assert json.loads(event["body"]) == {"name": "x"}


def test_invoke_of_a_failing_function_is_an_api_error_with_its_error_and_log() -> None:
    error = {"errorMessage": "No module named 'psycopg2._psycopg'", "errorType": "Runtime.ImportModuleError"}
    client = FakeLambda(error, error="Unhandled")
    with pytest.raises(ApiError, match=r"psycopg2\._psycopg") as raised:
        InvokeTransport(client, "api-fn").request("GET", "/tasks/1")
    assert raised.value.function_error == "Runtime.ImportModuleError: No module named 'psycopg2._psycopg'"
    assert raised.value.logs == ("START RequestId: r1", "from the handler")


def test_transport_choice() -> None:
    outputs = {"ApiUrl": "https://abc.execute-api.us-east-1.amazonaws.com/"}
    http = api_transport(outputs=outputs, http_api=True, lambda_client=None, api_function="fn")
    assert isinstance(http, HttpTransport)
    # LocalStack Community reports an "unknown" API id: there is nothing to call over HTTP.
    unknown = {"ApiUrl": "https://unknown.execute-api.127.0.0.1:4566/"}
    invoke = api_transport(outputs=unknown, http_api=True, lambda_client=None, api_function="fn")
    assert isinstance(invoke, InvokeTransport)
    assert isinstance(
        api_transport(outputs=outputs, http_api=False, lambda_client=None, api_function="fn"), InvokeTransport
    )
    with pytest.raises(EnvironmentProblem):
        api_transport(outputs={}, http_api=False, lambda_client=None, api_function=None)


def test_event_has_what_mangum_reads() -> None:
    event = http_api_event("GET", "/tasks/1", None)
    assert event["body"] is None
    assert event["requestContext"]["http"]["sourceIp"] == "127.0.0.1"  # Mangum reads it as the client
    assert event["isBase64Encoded"] is False
