"""Where new tasks are announced: the SQS queue the worker consumes."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Protocol
from uuid import UUID

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

# The function has 10 s and API Gateway 30 s; botocore's defaults (60 s
# timeouts, legacy retries) would let Lambda kill the request mid-transaction.
_CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=4, retries={"max_attempts": 2, "mode": "standard"})


class QueueUnavailable(Exception):
    """The message could not be sent; the caller must not report the task as queued."""


class TaskQueue(Protocol):
    def send(self, task_id: UUID) -> None: ...


class SqsTaskQueue:
    def __init__(self, queue_url: str, client: SQSClient | None = None) -> None:
        self._queue_url = queue_url
        self._client = client or boto3.client("sqs", config=_CLIENT_CONFIG)

    @classmethod
    def from_env(cls) -> SqsTaskQueue:
        queue_url = os.environ.get("TASK_QUEUE_URL")
        if not queue_url:
            raise RuntimeError("TASK_QUEUE_URL is not set: the URL of the queue the worker consumes")
        return cls(queue_url)

    def send(self, task_id: UUID) -> None:
        try:
            self._client.send_message(
                QueueUrl=self._queue_url, MessageBody=json.dumps({"task_id": str(task_id)})
            )
        except (BotoCoreError, ClientError) as err:
            raise QueueUnavailable(str(err)) from err
