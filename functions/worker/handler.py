"""Lambda entry point for the SQS event source mapping (ReportBatchItemFailures)."""

from __future__ import annotations

import os
from typing import Any

from taskdb.connection import Database

from worker.batch import BatchResponse, Worker

# Built at cold start and kept while the sandbox is warm, with its connection.
# The lease must be at least the function's timeout: a claim younger than that
# may belong to an invocation that is still running.
_worker = Worker(Database.from_env(), lease_seconds=float(os.environ.get("TASK_LEASE_SECONDS", "30")))


def lambda_handler(event: dict[str, Any], context: object) -> BatchResponse:
    return _worker.handle(event)
