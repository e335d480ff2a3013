"""The stand-in LocalStack init (builder/data/localstack-init.py) against its contract, on the host.

The init runs as a real process, as LocalStack starts it, with a small Runtime
API client as its bootstrap. On the other side is a recording HTTP server in
LocalStack's place: this test is about the init, not LocalStack, which
tests/app/test_deploy_localstack.py runs for real with the same init.
"""

from __future__ import annotations

import http.server
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from builder.app.localstack import INIT_SOURCE

RUNTIME_ID = "rt-1"
TIMEOUT_S = 2
WAIT_S = 20

# A Lambda runtime in a few lines: what awslambdaric does, driven by the event.
RUNTIME = r"""
import json, os, sys, time, urllib.request

api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"

def post(path, body):
    request = urllib.request.Request(api + path, data=json.dumps(body).encode(), method="POST")
    urllib.request.urlopen(request, timeout=10).read()

print("runtime: init", flush=True)
if os.environ.get("FAKE_INIT") == "import-error":
    message = "Unable to import module 'handler': No module named 'psycopg2._psycopg'"
    post("/init/error", {"errorMessage": message, "errorType": "Runtime.ImportModuleError"})
    sys.exit(1)
if os.environ.get("FAKE_INIT") == "exit":
    sys.exit(3)
while True:
    with urllib.request.urlopen(api + "/invocation/next", timeout=600) as response:
        request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
        deadline = int(response.headers["Lambda-Runtime-Deadline-Ms"])
        event = json.loads(response.read())
    action = event.get("action")
    print(f"runtime: handling {action}", flush=True)
    if action == "sleep":
        time.sleep(60)
    if action == "exit":
        os._exit(7)
    if action == "no-newline":
        sys.stdout.write("printed without a newline")
        sys.stdout.flush()
    if action == "die-when-idle":
        import threading
        threading.Thread(target=lambda: (time.sleep(0.3), os._exit(9)), daemon=True).start()
    if action == "raise":
        post(f"/invocation/{request_id}/error", {"errorMessage": "boom", "errorType": "ValueError"})
        continue
    private = ("LOCALSTACK_", "LAMBDAKIT_")
    hidden = sorted(k for k in os.environ if k.startswith(private) or k in ("HOME", "HOSTNAME"))
    post(f"/invocation/{request_id}/response",
         {"event": event, "hidden": hidden, "deadline_in_s": deadline / 1000 - time.time()})
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Call:
    path: str
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


class FakeLocalStack:
    """Records what the init posts to LocalStack's executor endpoint."""

    def __init__(self) -> None:
        self.calls: queue.Queue[Call] = queue.Queue()
        calls = self.calls

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                calls.put(Call(self.path, body))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}/_localstack_lambda/{RUNTIME_ID}"

    def next(self) -> Call:
        try:
            call = self.calls.get(timeout=WAIT_S)
        except queue.Empty:
            raise AssertionError(f"the init posted nothing to LocalStack within {WAIT_S}s") from None
        prefix = f"/_localstack_lambda/{RUNTIME_ID}/"
        assert call.path.startswith(prefix), call.path
        return Call(call.path.removeprefix(prefix), call.body)


@dataclass
class Init:
    process: subprocess.Popen[bytes]
    localstack: FakeLocalStack
    invoke_url: str

    def invoke(self, invoke_id: str, event: dict[str, object]) -> None:
        request = {"invoke-id": invoke_id, "invoked-function-arn": "arn:fn", "payload": json.dumps(event)}
        post = urllib.request.Request(self.invoke_url, data=json.dumps(request).encode(), method="POST")
        with urllib.request.urlopen(post, timeout=WAIT_S) as response:
            assert response.status == 200

    def result(self, invoke_id: str) -> tuple[str, str, bytes]:
        """(logs, "response" or "error", body) of one invocation, as LocalStack receives them."""
        logs = self.localstack.next()
        assert logs.path == f"invocations/{invoke_id}/logs", logs
        outcome = self.localstack.next()
        assert outcome.path.startswith(f"invocations/{invoke_id}/"), outcome
        return json.loads(logs.body)["logs"], outcome.path.rsplit("/", 1)[1], outcome.body


@pytest.fixture
def start_init(tmp_path: Path) -> Iterator:
    started: list[subprocess.Popen[bytes]] = []

    def start(**env: str) -> Init:
        runtime = tmp_path / "runtime.py"
        runtime.write_text(RUNTIME)
        bootstrap = tmp_path / "bootstrap"
        bootstrap.write_text(f"#!/bin/sh\nexec {sys.executable} {runtime}\n")
        bootstrap.chmod(0o755)
        localstack = FakeLocalStack()
        invoke_address = f"127.0.0.1:{free_port()}"
        process = subprocess.Popen(
            [sys.executable, str(INIT_SOURCE)],
            env={
                "PATH": os.environ["PATH"],
                "HOME": "/root",
                "LOCALSTACK_RUNTIME_ENDPOINT": localstack.endpoint,
                "LOCALSTACK_RUNTIME_ID": RUNTIME_ID,
                # Never add a user to this host's /etc/passwd.
                "LOCALSTACK_USER": "root",
                "LOCALSTACK_CHMOD_PATHS": "[]",
                "AWS_LAMBDA_FUNCTION_TIMEOUT": str(TIMEOUT_S),
                "LAMBDA_TASK_ROOT": str(tmp_path),
                "LAMBDAKIT_INIT_INVOKE_ADDRESS": invoke_address,
                "LAMBDAKIT_INIT_RUNTIME_API": f"127.0.0.1:{free_port()}",
                "LAMBDAKIT_INIT_BOOTSTRAPS": f"{tmp_path / 'missing'}:{bootstrap}",
                **env,
            },
            stdout=subprocess.DEVNULL,
        )
        started.append(process)
        return Init(process, localstack, f"http://{invoke_address}/invoke")

    yield start
    for process in started:
        process.kill()
        process.wait(timeout=WAIT_S)


def test_ready_then_an_invocation_answers_with_its_logs(start_init) -> None:
    init = start_init()
    assert init.localstack.next().path == f"status/{RUNTIME_ID}/ready"
    init.invoke("id-1", {"action": "echo", "n": 1})
    logs, outcome, body = init.result("id-1")
    assert outcome == "response"
    answer = json.loads(body)
    assert answer["event"] == {"action": "echo", "n": 1}
    # The init's own settings stay with the init, as LocalStack's does it.
    assert answer["hidden"] == []
    assert 0 < answer["deadline_in_s"] <= TIMEOUT_S
    lines = logs.splitlines()
    assert lines[0] == "START RequestId: id-1 Version: $LATEST"
    # The first invocation's log carries what the runtime printed while initialising.
    assert lines[1:3] == ["runtime: init", "runtime: handling echo"]
    assert lines[3] == "END RequestId: id-1"
    assert lines[4].startswith("REPORT RequestId: id-1\tDuration: ")

    init.invoke("id-2", {"action": "echo", "n": 2})
    logs, outcome, body = init.result("id-2")
    assert (outcome, json.loads(body)["event"]["n"]) == ("response", 2)
    assert logs.splitlines()[1:2] == ["runtime: handling echo"]


def test_a_handler_error_is_the_invocations_error(start_init) -> None:
    init = start_init()
    assert init.localstack.next().path == f"status/{RUNTIME_ID}/ready"
    init.invoke("id-1", {"action": "raise"})
    _, outcome, body = init.result("id-1")
    assert (outcome, json.loads(body)) == ("error", {"errorMessage": "boom", "errorType": "ValueError"})


def test_a_timeout_kills_the_runtime_and_the_next_invocation_reinitialises(start_init) -> None:
    init = start_init()
    assert init.localstack.next().path == f"status/{RUNTIME_ID}/ready"
    init.invoke("id-1", {"action": "sleep"})
    logs, outcome, body = init.result("id-1")
    assert outcome == "error"
    assert json.loads(body)["errorMessage"].endswith(f"id-1 Task timed out after {TIMEOUT_S}.00 seconds")
    assert "runtime: handling sleep" in logs

    init.invoke("id-2", {"action": "echo"})
    logs, outcome, _ = init.result("id-2")
    assert outcome == "response"
    assert "runtime: init" in logs.splitlines()  # a fresh runtime process


def test_a_runtime_crash_fails_its_invocation_only(start_init) -> None:
    init = start_init()
    assert init.localstack.next().path == f"status/{RUNTIME_ID}/ready"
    init.invoke("id-1", {"action": "exit"})
    _, outcome, body = init.result("id-1")
    assert (outcome, json.loads(body)) == (
        "error",
        {"errorMessage": "Runtime exited with error: exit status 7", "errorType": "Runtime.ExitError"},
    )
    init.invoke("id-2", {"action": "echo"})
    assert init.result("id-2")[1] == "response"


def test_an_import_error_at_init_is_reported_as_a_failed_start(start_init) -> None:
    init = start_init(FAKE_INIT="import-error")
    call = init.localstack.next()
    assert call.path == f"status/{RUNTIME_ID}/error"
    assert call.json() == {
        "errorMessage": "Unable to import module 'handler': No module named 'psycopg2._psycopg'",
        "errorType": "Runtime.ImportModuleError",
    }
    # Reported once, although the runtime also exits right after.
    time.sleep(0.5)
    assert init.localstack.calls.empty()


def test_a_runtime_that_exits_before_it_is_ready_is_a_failed_start(start_init) -> None:
    init = start_init(FAKE_INIT="exit")
    call = init.localstack.next()
    assert call.path == f"status/{RUNTIME_ID}/error"
    assert call.json() == {
        "errorMessage": "Runtime exited with error: exit status 3",
        "errorType": "Runtime.ExitError",
    }


def test_no_bootstrap_is_a_failed_start(start_init) -> None:
    init = start_init(LAMBDAKIT_INIT_BOOTSTRAPS="/nonexistent/bootstrap")
    call = init.localstack.next()
    assert call.path == f"status/{RUNTIME_ID}/error"
    assert call.json()["errorType"] == "Runtime.InvalidEntrypoint"


def test_sigterm_ends_the_init_at_once(start_init) -> None:
    """As PID 1 without a handler, every container stop would wait the whole grace period (5 s)."""
    init = start_init()
    assert init.localstack.next().path == f"status/{RUNTIME_ID}/ready"
    init.process.send_signal(signal.SIGTERM)
    assert init.process.wait(timeout=3) == 0


def test_a_runtime_that_dies_while_idle_does_not_take_the_next_invocation_with_it(start_init) -> None:
    """Its GET .../next was pending when it died: the next invocation goes to a fresh runtime."""
    init = start_init()
    assert init.localstack.next().path == f"status/{RUNTIME_ID}/ready"
    init.invoke("id-1", {"action": "die-when-idle"})
    assert init.result("id-1")[1] == "response"
    time.sleep(1)  # it has died, with its GET for the next invocation still open
    init.invoke("id-2", {"action": "echo"})
    logs, outcome, _ = init.result("id-2")
    assert outcome == "response", logs
    assert "runtime: init" in logs.splitlines()


def test_output_without_a_newline_stays_with_its_invocation(start_init) -> None:
    init = start_init()
    assert init.localstack.next().path == f"status/{RUNTIME_ID}/ready"
    init.invoke("id-1", {"action": "no-newline"})
    logs, _, _ = init.result("id-1")
    assert "printed without a newline" in logs
    init.invoke("id-2", {"action": "echo"})
    logs, _, _ = init.result("id-2")
    assert "printed without a newline" not in logs
    assert logs.splitlines()[1] == "runtime: handling echo"


def test_a_bootstrap_that_cannot_be_executed_is_a_failed_start(start_init, tmp_path: Path) -> None:
    bootstrap = tmp_path / "broken" / "bootstrap"
    bootstrap.parent.mkdir()
    bootstrap.write_text("#!/nonexistent/interpreter\n")
    bootstrap.chmod(0o755)
    init = start_init(LAMBDAKIT_INIT_BOOTSTRAPS=str(bootstrap))
    call = init.localstack.next()
    assert call.path == f"status/{RUNTIME_ID}/error"
    assert call.json()["errorType"] == "Runtime.InvalidEntrypoint"
    assert init.process.poll() is None  # the init itself lives on to report
