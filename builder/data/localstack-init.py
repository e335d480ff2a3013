#!/var/lang/bin/python3
"""lambdakit's STAND-IN for LocalStack's Lambda runtime init (/var/rapid/init).

LocalStack downloads its init (a Go fork of AWS's Runtime Interface Emulator)
from GitHub and copies it into every Lambda container it starts. Offline, that
download fails and no Lambda code runs. This program speaks the same contract,
written from its observable behaviour, and runs on the runtime image's own
Python (standard library only, Python 3.9 and newer):

  LocalStack -> init   POST :9563/invoke {"invoke-id", "invoked-function-arn", "payload", "trace-id"}
  init -> LocalStack   POST {LOCALSTACK_RUNTIME_ENDPOINT}/status/{LOCALSTACK_RUNTIME_ID}/ready | /error
                       POST {endpoint}/invocations/{id}/logs {"logs": "..."}, then /response or /error
  runtime <-> init     the Lambda Runtime API on 127.0.0.1:9001 (AWS_LAMBDA_RUNTIME_API)

It runs the first of /var/runtime/bootstrap, /var/task/bootstrap,
/opt/bootstrap as Lambda's sandbox user (uid 993, gid 990, unless
LOCALSTACK_USER=root), enforces the function's timeout, reports init errors,
handler errors and runtime crashes as Lambda does, and forwards the runtime's
output as the invocation's log (with START/END/REPORT lines).

What it is not: LocalStack's real init. No extensions API, no X-Ray daemon, no
hot reloading, no response streaming, no SnapStart. A result from it proves
that the code, its packages and LocalStack's wiring work, not that the real
Go init would behave identically in every corner.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import http.server
import json
import math
import os
import queue
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import urllib.request
from typing import Any

# LocalStack posts to the container's address on port 9563. The overrides are for tests on a host.
INVOKE_ADDRESS = os.environ.get("LAMBDAKIT_INIT_INVOKE_ADDRESS", "0.0.0.0:9563")
RUNTIME_API = os.environ.get("LAMBDAKIT_INIT_RUNTIME_API", "127.0.0.1:9001")
DEFAULT_BOOTSTRAPS = "/var/runtime/bootstrap:/var/task/bootstrap:/opt/bootstrap"
BOOTSTRAPS = tuple(os.environ.get("LAMBDAKIT_INIT_BOOTSTRAPS", DEFAULT_BOOTSTRAPS).split(":"))
SANDBOX_USER = ("sbx_user1051", 993, 990)
# The init's own settings; the runtime never sees them (as with LocalStack's init).
PRIVATE_VARIABLES = ("HOSTNAME", "HOME")
PRIVATE_PREFIXES = ("LOCALSTACK_", "LAMBDAKIT_INIT_")
# How long an invocation's log may wait for the runtime's output still in the pipe.
LOG_DRAIN_MAX_S = 1.0


# The function's environment may set HTTP_PROXY for its own calls; the init's go straight to LocalStack.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def log(message: str) -> None:
    sys.stdout.write(f"lambdakit-init: {message}\n")
    sys.stdout.flush()


class LocalStack:
    """The endpoint LocalStack gave this container."""

    def __init__(self, endpoint: str, runtime_id: str) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.runtime_id = runtime_id

    def post(self, path: str, body: bytes) -> None:
        request = urllib.request.Request(
            f"{self.endpoint}/{path}", data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with DIRECT.open(request, timeout=30) as response:
                response.read()
        except (OSError, http.client.HTTPException) as err:
            log(f"POST {path} to LocalStack failed: {err}")

    def ready(self) -> None:
        self.post(f"status/{self.runtime_id}/ready", b"")

    def startup_failed(self, error: bytes) -> None:
        self.post(f"status/{self.runtime_id}/error", error)

    def finish(self, invoke_id: str, logs: str, outcome: str, body: bytes) -> None:
        self.post(f"invocations/{invoke_id}/logs", json.dumps({"logs": logs}).encode())
        self.post(f"invocations/{invoke_id}/{outcome}", body)


def error_body(message: str, error_type: str = "") -> bytes:
    document = {"errorMessage": message}
    if error_type:
        document["errorType"] = error_type
    return json.dumps(document).encode()


class Invocation:
    def __init__(self, request: dict[str, Any]) -> None:
        self.id = str(request["invoke-id"])
        self.arn = str(request.get("invoked-function-arn", ""))
        self.payload = str(request.get("payload", "")).encode()
        self.trace_id = str(request.get("trace-id") or "")
        self.started = 0.0
        self.deadline_ms = 0
        self.outcome: tuple[str, bytes] | None = None
        self.done = threading.Event()
        self.settling = threading.Lock()

    def settle(self, outcome: str, body: bytes) -> bool:
        """Record the first outcome only: a late answer after a timeout is dropped."""
        with self.settling:
            if self.done.is_set():
                return False
            self.outcome = (outcome, body)
            self.done.set()
            return True


class Sandbox:
    """One execution environment: the runtime process, its invocations and its output."""

    def __init__(self, localstack: LocalStack) -> None:
        self.localstack = localstack
        self.timeout_s = float(os.environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT", "3"))
        self.memory_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.user = os.environ.get("LOCALSTACK_USER", SANDBOX_USER[0])
        self.lock = threading.Lock()
        self.pending: queue.Queue[Invocation] = queue.Queue()
        # One per runtime process: a dead runtime's pending GET .../next waits on its own queue,
        # never on the one its successor reads.
        self.handoff: queue.Queue[Invocation] = queue.Queue(maxsize=1)
        self.current: Invocation | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.ready_sent = False
        self.init_error: bytes | None = None
        self.startup_reported = False
        self.output: list[str] = []
        self.pipes: set[int] = set()  # the runtime's output pipes still being read
        self.partial = b""  # the runtime's last output line, until its newline comes

    # --- the runtime process ---------------------------------------------------------------------

    def start_runtime(self) -> None:
        bootstrap = next((path for path in BOOTSTRAPS if os.access(path, os.X_OK)), None)
        if bootstrap is None:
            self.runtime_did_not_start(f"no bootstrap found: {', '.join(BOOTSTRAPS)}")
            return
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in PRIVATE_VARIABLES and not key.startswith(PRIVATE_PREFIXES)
        }
        env["AWS_LAMBDA_RUNTIME_API"] = RUNTIME_API
        # None keeps this process's user and groups.
        uid: int | None = None
        gid: int | None = None
        extra_groups: list[int] | None = None
        if os.getuid() == 0 and self.user != "root":
            _, uid, gid = SANDBOX_USER
            extra_groups = []
        self.init_error = None
        try:
            process = subprocess.Popen(
                [bootstrap],
                env=env,
                cwd=os.environ.get("LAMBDA_TASK_ROOT", "/var/task"),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=uid,
                group=gid,
                extra_groups=extra_groups,
            )
        except OSError as err:  # a bad interpreter line, no execute permission for the sandbox user
            self.runtime_did_not_start(f"{bootstrap} could not be started: {err}")
            return
        with self.lock:
            self.process = process
            self.handoff = queue.Queue(maxsize=1)
        threading.Thread(target=self.read_output, args=(process,), daemon=True).start()
        threading.Thread(target=self.supervise, args=(process,), daemon=True).start()

    def read_output(self, process: subprocess.Popen[bytes]) -> None:
        """Move the runtime's output into the log buffer: each read and its append under the lock,
        so that "the pipe is empty" (see take_log) means "everything written is in the buffer"."""
        assert process.stdout is not None
        fd = process.stdout.fileno()
        with self.lock:
            self.pipes.add(fd)
        while True:
            select.select([fd], [], [])
            with self.lock:
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.pipes.discard(fd)
                    self.flush_partial_line()
                    break
                *lines, self.partial = (self.partial + chunk).split(b"\n")
                self.output += [line.decode(errors="replace") + "\n" for line in lines]
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
        process.stdout.close()

    def flush_partial_line(self) -> None:
        """Output without its newline yet belongs to the invocation it was printed in (lock held)."""
        if self.partial:
            self.output.append(self.partial.decode(errors="replace") + "\n")
            self.partial = b""

    def unread_output(self) -> int:
        """Bytes the runtime wrote that are not in the buffer yet (call with the lock held)."""
        pending = 0
        for fd in self.pipes:
            with contextlib.suppress(OSError):
                pending += struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
        return pending

    def supervise(self, process: subprocess.Popen[bytes]) -> None:
        code = process.wait()
        with self.lock:
            stopped_on_purpose = self.process is not process
            if not stopped_on_purpose:
                self.process = None
            ready, current = self.ready_sent, self.current
        if stopped_on_purpose:  # killed at a timeout, whose error is already recorded
            return
        if not ready:
            self.fail_startup(self.init_error or exit_error(code))
        elif current is not None:
            current.settle("error", self.init_error or exit_error(code))

    def stop_runtime(self) -> None:
        with self.lock:
            process, self.process = self.process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

    def runtime_did_not_start(self, message: str) -> None:
        error = error_body(message, "Runtime.InvalidEntrypoint")
        with self.lock:
            ready, current = self.ready_sent, self.current
        if not ready:
            self.fail_startup(error)
        elif current is not None:
            current.settle("error", error)

    def fail_startup(self, error: bytes) -> None:
        with self.lock:
            if self.startup_reported:
                return
            self.startup_reported = True
        log(f"runtime start-up failed: {error.decode(errors='replace')}")
        self.localstack.startup_failed(error)

    # --- the Runtime API side ----------------------------------------------------------------------

    def next_invocation(self) -> Invocation:
        """Called by the runtime's GET .../invocation/next: its first call means it is initialised."""
        with self.lock:
            first = not self.ready_sent
            self.ready_sent = True
            self.startup_reported = True
            handoff = self.handoff
        if first:
            self.localstack.ready()
        return handoff.get()

    def runtime_answered(self, invoke_id: str, outcome: str, body: bytes) -> bool:
        with self.lock:
            current = self.current
        if current is None or current.id != invoke_id:
            return False
        current.settle(outcome, body)
        return True

    def runtime_init_failed(self, body: bytes) -> None:
        with self.lock:
            self.init_error = body
            ready = self.ready_sent
        if not ready:
            self.fail_startup(body)

    # --- invocations ---------------------------------------------------------------------------------

    def dispatch_forever(self) -> None:
        while True:
            invocation = self.pending.get()
            try:
                self.run(invocation)
            except Exception as err:  # an init bug must not wedge the sandbox
                log(f"invocation {invocation.id} failed inside the init: {err!r}")
                self.localstack.finish(invocation.id, "", "error", error_body(repr(err), "Runtime.InitError"))

    def run(self, invocation: Invocation) -> None:
        invocation.started = time.monotonic()
        invocation.deadline_ms = int((time.time() + self.timeout_s) * 1000)
        with self.lock:
            # Set before a restart, so that a failing re-initialisation settles this invocation.
            self.current = invocation
            running = self.process is not None
        if not running:
            self.start_runtime()  # a previous invocation timed out or crashed the runtime: re-initialise
        with self.lock:
            handoff = self.handoff
        handoff.put(invocation)
        if not invocation.done.wait(self.timeout_s):
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            message = f"{stamp} {invocation.id} Task timed out after {self.timeout_s:.2f} seconds"
            if invocation.settle("error", error_body(message)):
                self.stop_runtime()
        self.drain_handoff()
        with self.lock:
            self.current = None
        assert invocation.outcome is not None
        outcome, body = invocation.outcome
        self.localstack.finish(invocation.id, self.take_log(invocation), outcome, body)

    def drain_handoff(self) -> None:
        """An invocation a dead runtime never picked up must not go to the next one."""
        with self.lock:
            handoff = self.handoff
        with contextlib.suppress(queue.Empty):
            handoff.get_nowait()

    def take_log(self, invocation: Invocation) -> str:
        elapsed_ms = (time.monotonic() - invocation.started) * 1000
        # What the runtime printed before it answered is in the pipe or already in the buffer:
        # wait until the reader has taken it (bounded, in case the runtime keeps printing).
        deadline = time.monotonic() + LOG_DRAIN_MAX_S
        while True:
            with self.lock:
                if not self.unread_output() or time.monotonic() > deadline:
                    self.flush_partial_line()
                    lines, self.output = self.output, []
                    break
            time.sleep(0.001)
        return "".join(
            [
                f"START RequestId: {invocation.id} Version: {self.version}\n",
                *lines,
                f"END RequestId: {invocation.id}\n",
                f"REPORT RequestId: {invocation.id}\tDuration: {elapsed_ms:.2f} ms\t"
                f"Billed Duration: {math.ceil(elapsed_ms)} ms\tMemory Size: {self.memory_mb} MB\n",
            ]
        )


def exit_error(code: int) -> bytes:
    how = f"signal: {-code}" if code < 0 else f"exit status {code}"
    return error_body(f"Runtime exited with error: {how}", "Runtime.ExitError")


class QuietHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are written separately: without this, Nagle's algorithm
    # and delayed ACKs add about 40 ms to every request.
    disable_nagle_algorithm = True
    sandbox: Sandbox

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class RuntimeApi(QuietHandler):
    """The Lambda Runtime API, as the runtime interface client calls it."""

    PREFIX = "/2018-06-01/runtime/"

    def do_GET(self) -> None:
        if self.path != self.PREFIX + "invocation/next":
            self.answer(404)
            return
        invocation = self.sandbox.next_invocation()
        headers = {
            "Content-Type": "application/json",
            "Lambda-Runtime-Aws-Request-Id": invocation.id,
            "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": invocation.arn,
        }
        if invocation.trace_id:
            headers["Lambda-Runtime-Trace-Id"] = invocation.trace_id
        self.answer(200, invocation.payload, headers)

    def do_POST(self) -> None:
        body = self.body()
        parts = self.path[len(self.PREFIX) :].split("/") if self.path.startswith(self.PREFIX) else []
        if parts == ["init", "error"]:
            self.sandbox.runtime_init_failed(body)
            self.answer(202)
        elif len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
            known = self.sandbox.runtime_answered(parts[1], parts[2], body)
            self.answer(202 if known else 400)
        else:
            self.answer(404)


class InvokeApi(QuietHandler):
    """LocalStack's side: it posts each invocation here and waits for our callback."""

    def do_POST(self) -> None:
        body = self.body()
        if self.path != "/invoke":
            self.answer(404)
            return
        try:
            invocation = Invocation(json.loads(body))
        except (ValueError, KeyError, TypeError) as err:
            self.answer(400, str(err).encode())
            return
        self.sandbox.pending.put(invocation)
        self.answer(200, b"OK")


def serve(handler: type[QuietHandler], address: str) -> None:
    host, port = address.rsplit(":", 1)
    server = http.server.ThreadingHTTPServer((host, int(port)), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()


def adapt_permissions(spec: str) -> None:
    """LOCALSTACK_CHMOD_PATHS: [{"path", "mode"}], applied recursively."""
    for entry in json.loads(spec or "[]"):
        mode = int(entry["mode"], 8)
        for root, dirs, files in os.walk(entry["path"]):
            for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                if os.path.islink(name):
                    continue  # chmod would change what the link points to
                with contextlib.suppress(OSError):
                    os.chmod(name, mode)


def add_sandbox_user() -> None:
    """Lambda's sandbox user, so that libraries looking up the uid find a name."""
    name, uid, gid = SANDBOX_USER
    entry = f"{name}:x:{uid}:{gid}::/home/{name}:/sbin/nologin\n"
    try:
        with open("/etc/passwd", "a+") as passwd:
            passwd.seek(0)
            if entry not in passwd.read():
                passwd.write(entry)
        os.chown("/tmp", uid, gid)
    except OSError as err:
        log(f"could not prepare the sandbox user: {err}")


def main() -> None:
    endpoint = os.environ.get("LOCALSTACK_RUNTIME_ENDPOINT")
    runtime_id = os.environ.get("LOCALSTACK_RUNTIME_ID")
    if not endpoint or not runtime_id:
        log("LOCALSTACK_RUNTIME_ENDPOINT and LOCALSTACK_RUNTIME_ID must be set (LocalStack sets them)")
        sys.exit(2)
    # PID 1 in the container: without a handler, every stop waits the full grace period.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    sandbox = Sandbox(LocalStack(endpoint, runtime_id))
    adapt_permissions(os.environ.get("LOCALSTACK_CHMOD_PATHS", "[]"))
    if os.getuid() == 0 and sandbox.user != "root":
        add_sandbox_user()
    QuietHandler.sandbox = sandbox
    serve(RuntimeApi, RUNTIME_API)
    serve(InvokeApi, INVOKE_ADDRESS)
    sandbox.start_runtime()
    sandbox.dispatch_forever()


if __name__ == "__main__":
    main()
