"""End to end: HTTP -> PostgreSQL + SQS -> the worker's Lambda handler -> PostgreSQL -> HTTP."""

from __future__ import annotations

import importlib
import json
from typing import Any
from uuid import UUID

import httpx
import pytest
from harness import Poller, Queues
from taskdb.connection import Database
from worker.batch import perform_task


def test_a_task_goes_from_the_api_through_the_queue_to_completed(
    api_url: str, lambda_env: pytest.MonkeyPatch, db: Database, poller: Poller, sqs: Any, queues: Queues
) -> None:
    handler = importlib.import_module("worker.handler")

    created = httpx.post(f"{api_url}/tasks", json={"name": "invoice", "payload": {"order": 42}})
    assert created.status_code == 201
    task_id = created.json()["id"]

    messages, response = poller.poll(lambda event: handler.lambda_handler(event, None))

    assert [json.loads(m["Body"]) for m in messages] == [{"task_id": task_id}]
    assert response == {"batchItemFailures": []}
    assert db.execute("SELECT status FROM tasks WHERE id = %s", (UUID(task_id),)) == [("completed",)]
    shown = httpx.get(f"{api_url}/tasks/{task_id}").json()
    assert shown["status"] == "completed"
    assert shown["result"] == perform_task("invoice", {"order": 42})
    assert shown["attempts"] == 1
    listed = httpx.get(f"{api_url}/tasks", params={"status": "completed"}).json()
    assert [t["id"] for t in listed["items"]] == [task_id]

    # SQS delivers at least once: the same message again changes nothing.
    sqs.send_message(QueueUrl=queues.url, MessageBody=messages[0]["Body"])
    _, again = poller.poll(lambda event: handler.lambda_handler(event, None))

    assert again == {"batchItemFailures": []}
    assert httpx.get(f"{api_url}/tasks/{task_id}").json() == shown
    assert poller.count(queues.url) == 0
