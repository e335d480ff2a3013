"""One layer for many targets at once: each target is a `lambdakit build-layer` of its own.

A target runs in its own process, so it keeps everything a single build guarantees
(its lock, its staging folder, its clean-up on a signal) and a failure stays its own;
the processes share uv's cache, so a wheel is downloaded once. Up to `jobs` run at a
time. Each publishes to OUT/<runtime>-<arch>/<name>.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.errors import EXIT_INVALID, EXIT_NOT_VERIFIED, EXIT_OK, EXIT_USAGE
from builder.runtimes import Target

# Worse verdicts rank higher; the matrix exits with its worst target's code.
VERDICT_RANK = {"valid": 0, "unvalidated": 0, "not-verified": 1, "invalid": 2, "error": 3}
VERDICT_EXIT = {"valid": EXIT_OK, "unvalidated": EXIT_OK, "not-verified": EXIT_NOT_VERIFIED,
                "invalid": EXIT_INVALID, "error": EXIT_USAGE}  # fmt: skip
# Seconds a target's build may take: resolution has its own timeout (backends.RESOLVE_TIMEOUT_S).
TARGET_TIMEOUT_S = 1800
# How long a stopped build may take to clean up before it is killed.
GRACE_S = 60


@dataclass(frozen=True, kw_only=True)
class TargetOutcome:
    target: Target
    verdict: str  # valid, not-verified, invalid, error (or unvalidated)
    where: str  # where the import was proven, or why it was not
    zipped_bytes: int | None
    path: str | None
    seconds: float
    document: dict[str, Any]  # the target's own build-layer --json document

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.target.runtime,
            "arch": self.target.arch.name,
            "verdict": self.verdict,
            "where": self.where,
            "zipped_bytes": self.zipped_bytes,
            "path": self.path,
            "seconds": round(self.seconds, 3),
            "result": self.document,
        }


def rank(verdict: str) -> int:
    """How bad a verdict is; one this code does not know counts as an error."""
    return VERDICT_RANK.get(verdict, VERDICT_RANK["error"])


def target_out(out: Path, t: Target) -> Path:
    return out / f"{t.runtime}-{t.arch.name}"


def worst_exit(outcomes: Iterable[TargetOutcome], *, allow_unverified: bool) -> int:
    worst = max((o.verdict for o in outcomes), key=rank, default="valid")
    if worst == "not-verified" and allow_unverified:
        return EXIT_OK
    return VERDICT_EXIT.get(worst, EXIT_USAGE)


def build_matrix(
    targets: list[Target],
    argv_for: Callable[[Target], list[str]],
    *,
    jobs: int,
    on_done: Callable[[TargetOutcome], None],
) -> list[TargetOutcome]:
    """Run `lambdakit <argv_for(target)> --json` for each target; outcomes in the targets' order.

    If this process is interrupted, no build starts any more and every build still
    running is sent SIGTERM (each then removes its staging folder and leaves its
    previous layer as it was) before the interruption goes on.
    """
    running: set[subprocess.Popen[str]] = set()
    lock = threading.Lock()
    stopping = threading.Event()

    def run(t: Target) -> TargetOutcome | None:
        started = time.perf_counter()
        argv = [sys.executable, "-m", "builder", *argv_for(t), "--json"]
        with lock:
            if stopping.is_set():
                return None
            # A session of its own: a Ctrl-C at the terminal reaches lambdakit only, which
            # then stops each build once (a second signal would cut into its clean-up).
            proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
            )
            running.add(proc)
        try:
            stdout, stderr = proc.communicate(timeout=TARGET_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            stdout, stderr = _stop(proc)
            stderr += f"\nstopped after {TARGET_TIMEOUT_S}s"
        finally:
            with lock:
                running.discard(proc)
        outcome = parse_outcome(t, proc.returncode, stdout, stderr, time.perf_counter() - started)
        on_done(outcome)
        return outcome

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        try:
            futures = [pool.submit(run, t) for t in targets]
            outcomes = [future.result() for future in futures]
        except BaseException:
            with lock:
                stopping.set()
                stopped = list(running)
            # Each build cleans up on SIGTERM; one stuck in its clean-up is killed after a grace period.
            for proc in stopped:
                proc.terminate()
            for proc in stopped:
                try:
                    proc.wait(timeout=GRACE_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
            raise
    return [outcome for outcome in outcomes if outcome is not None]


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGTERM (the build cleans up and exits 143), then SIGKILL if it has not ended in GRACE_S."""
    proc.terminate()
    try:
        return proc.communicate(timeout=GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


def parse_outcome(t: Target, returncode: int, stdout: str, stderr: str, seconds: float) -> TargetOutcome:
    try:
        document: dict[str, Any] = json.loads(stdout)
    except json.JSONDecodeError:
        tail = " | ".join(stderr.strip().splitlines()[-3:]) or "no output"
        document = {"ok": False, "error": "Crashed", "message": f"the build printed no result: {tail}"}
    manifest = document.get("manifest")
    if manifest is None:
        # The child's exit code says what its error means (errors.py), whatever its class.
        verdict = "invalid" if returncode == EXIT_INVALID else "error"
        problems = document.get("validation", {}).get("problems", [])
        codes = sorted({p["code"] for p in problems if p.get("severity") == "error"})
        where = f"{', '.join(codes)}: {document.get('message', '')}" if codes else document.get("message", "")
        return TargetOutcome(
            target=t,
            verdict=verdict,
            where=where,
            zipped_bytes=None,
            path=None,
            seconds=seconds,
            document=document,
        )
    validation = manifest["validation"]
    imports = validation.get("imports", {})
    verdict = validation["verdict"]
    where = imports.get("where", "") if verdict == "valid" else f"not verified: {imports.get('reason', '')}"
    if verdict == "unvalidated":
        where = "not checked (--no-validate)"
    return TargetOutcome(
        target=t,
        verdict=verdict,
        where=where,
        zipped_bytes=manifest["sizes"]["zipped"],
        path=document.get("path"),
        seconds=seconds,
        document=document,
    )
