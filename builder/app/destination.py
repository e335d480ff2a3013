"""Where an application is deployed (deploy's --target): LocalStack or AWS.

Not a builder.runtimes.Target, which is a runtime and an architecture. Kept apart from what
talks to either, so the commands' options can name them without loading boto3 or the Docker SDK.
"""

from __future__ import annotations

from typing import Literal

Destination = Literal["localstack", "aws"]
DESTINATIONS: tuple[Destination, ...] = ("localstack", "aws")
DEFAULT_LOCALSTACK_URL = "http://127.0.0.1:4566"
