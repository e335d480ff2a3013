"""A deployed function's CloudWatch Logs lines, as e2e and doctor read them."""

from __future__ import annotations

from typing import Any

import botocore.exceptions


def function_log_lines(logs_client: Any, function: str, since_ms: int) -> list[str]:
    """The function's CloudWatch Logs lines since since_ms; [] when it has logged nothing yet (no
    group). Any other failure raises: an unread log is not a clean one."""
    lines: list[str] = []
    try:
        paginator = logs_client.get_paginator("filter_log_events")
        for page in paginator.paginate(logGroupName=f"/aws/lambda/{function}", startTime=since_ms):
            lines += [str(event.get("message", "")).rstrip("\n") for event in page.get("events", [])]
    except botocore.exceptions.ClientError as err:
        if err.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return []
        raise
    return lines
