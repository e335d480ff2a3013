"""Process one SQS batch with a bounded number of database round trips.

A batch of any size costs two statements: one claims every task it names
(pending -> processing), one records every outcome (processing -> completed,
or back to pending when processing raised). Records that cannot succeed now
are reported in batchItemFailures, so SQS redelivers them alone and, after the
queue's maxReceiveCount, moves them to the dead-letter queue.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID, uuid4

import psycopg2
from taskdb.connection import Database
from taskdb.tasks import Outcome, claim_tasks, finish_tasks

log = logging.getLogger(__name__)

Perform = Callable[[str, dict[str, Any]], dict[str, Any]]
BatchResponse = dict[str, list[dict[str, str]]]


def perform_task(name: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The work a task stands for: here, a summary of its payload."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return {"name": name, "keys": sorted(payload), "sha256": hashlib.sha256(canonical.encode()).hexdigest()}


def parse_task_id(body: str) -> UUID | None:
    """The task id of a message body {"task_id": "<uuid>"}, or None if malformed."""
    try:
        message = json.loads(body)
        return UUID(message["task_id"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


class Worker:
    def __init__(self, db: Database, *, lease_seconds: float, perform: Perform = perform_task) -> None:
        self._db = db
        self._lease_seconds = lease_seconds
        self._perform = perform

    def handle(self, event: Mapping[str, Any]) -> BatchResponse:
        """The SQS event in, the partial batch response out."""
        task_ids: dict[str, UUID | None] = {}
        for record in event["Records"]:
            task_id = parse_task_id(record["body"])
            if task_id is None:
                log.warning('message %s: body is not {"task_id": "<uuid>"}', record["messageId"])
            task_ids[record["messageId"]] = task_id

        wanted = sorted({task_id for task_id in task_ids.values() if task_id is not None})
        done: dict[UUID, bool] = {}
        if wanted:
            try:
                done = self._process(wanted)
            except psycopg2.Error:
                # Nothing of this batch is known to be recorded: every record is
                # retried, and the claim (if it was made) lapses after the lease.
                log.exception("database error; the %d records of the batch will be retried", len(task_ids))
        failures = [
            {"itemIdentifier": message_id}
            for message_id, task_id in task_ids.items()
            if task_id is None or not done.get(task_id, False)
        ]
        return {"batchItemFailures": failures}

    def _process(self, task_ids: list[UUID]) -> dict[UUID, bool]:
        """Whether each task is now completed (a record for it can be deleted)."""
        token = uuid4()
        done: dict[UUID, bool] = {}
        outcomes: list[Outcome] = []
        for row in claim_tasks(self._db, task_ids, token=token, lease_seconds=self._lease_seconds):
            if row.claimed:
                assert row.name is not None and row.payload is not None  # a claimed row carries both
                outcomes.append(self._run(row.task_id, row.name, row.payload))
            elif row.status == "completed":
                done[row.task_id] = True  # a redelivered or duplicate message: nothing to do
            else:
                done[row.task_id] = False
                reason = "no such task" if row.status is None else f"task is {row.status}, claimed elsewhere"
                log.warning("task %s: %s; its message will be retried", row.task_id, reason)
        if outcomes:
            recorded = finish_tasks(self._db, outcomes, token=token)
            for outcome in outcomes:
                done[outcome.task_id] = outcome.status == "completed" and outcome.task_id in recorded
        return done

    def _run(self, task_id: UUID, name: str, payload: dict[str, Any]) -> Outcome:
        try:
            return Outcome(task_id=task_id, status="completed", result=self._perform(name, payload))
        except Exception as err:  # one task's failure must not fail its neighbours
            log.exception("task %s failed; it goes back to pending and its message will be retried", task_id)
            return Outcome(task_id=task_id, status="pending", error=f"{type(err).__name__}: {err}")
