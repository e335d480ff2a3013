"""What the application's tests share besides fixtures: paths, the template's
queue settings, running the SAM CLI, and a stand-in for Lambda's SQS event
source mapping."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from samcli.yamlhelper import yaml_parse

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE: dict[str, Any] = yaml_parse((ROOT / "template.yaml").read_text())
MAX_RECEIVE_COUNT = int(TEMPLATE["Resources"]["TaskQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"])
REGION = "us-east-1"
BIN = Path(sys.executable).parent


def run_sam(
    *args: str, cwd: Path = ROOT, env: Mapping[str, str] = {}, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """The SAM CLI of this venv. Its makefile builds call `lambdakit` from PATH: the one next to it."""
    full_env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "SAM_CLI_TELEMETRY": "0", **env}
    return subprocess.run(
        [str(BIN / "sam"), *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout
    )


@dataclass(frozen=True)
class Queues:
    url: str
    arn: str
    dlq_url: str


Handler = Callable[[dict[str, Any]], dict[str, Any]]  # the SQS event in, the batch response out


@dataclass
class Poller:
    """Does what Lambda's SQS event source mapping does, once per poll().

    Receive a batch, call the handler with it in the SQS event shape, delete
    the records not listed in batchItemFailures. Lambda leaves failed records
    to reappear when their visibility timeout ends; here they are made visible
    at once so a test need not wait.
    """

    sqs: Any
    queues: Queues

    def receive(self, max_messages: int = 10) -> list[dict[str, Any]]:
        return self.sqs.receive_message(
            QueueUrl=self.queues.url,
            MaxNumberOfMessages=max_messages,
            AttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])

    def event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m["Attributes"],
                    "messageAttributes": {},
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.queues.arn,
                    "awsRegion": REGION,
                }
                for m in messages
            ]
        }

    def poll(self, handler: Handler, max_messages: int = 10) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """One invocation: the messages received and the handler's response."""
        messages = self.receive(max_messages)
        if not messages:
            return [], {"batchItemFailures": []}
        response = handler(self.event(messages))
        failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queues.url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        for m in messages:
            if m["MessageId"] in failed:
                self.sqs.change_message_visibility(
                    QueueUrl=self.queues.url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                )
        return messages, response

    def count(self, url: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )
