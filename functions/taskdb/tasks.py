"""Every statement on the tasks table (schema: migrations/0001_create_tasks.sql)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args
from uuid import UUID

import psycopg2.extensions
from psycopg2.extras import Json

from taskdb.connection import Database

Status = Literal["pending", "processing", "completed"]
STATUSES: tuple[Status, ...] = get_args(Status)

_COLUMNS = "id, name, payload, status, result, error, attempts, created_at, updated_at"


@dataclass(frozen=True, kw_only=True)
class Task:
    id: UUID
    name: str
    payload: dict[str, Any]
    status: Status
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Task:
        id_, name, payload, status, result, error, attempts, created_at, updated_at = row
        return cls(
            id=id_,
            name=name,
            payload=payload,
            status=status,
            result=result,
            error=error,
            attempts=attempts,
            created_at=created_at,
            updated_at=updated_at,
        )


def insert_task(cur: psycopg2.extensions.cursor, task_id: UUID, name: str, payload: dict[str, Any]) -> Task:
    cur.execute(
        f"INSERT INTO tasks (id, name, payload) VALUES (%s, %s, %s) RETURNING {_COLUMNS}",
        (task_id, name, Json(payload)),
    )
    row = cur.fetchone()
    assert row is not None  # INSERT ... RETURNING always returns the row
    return Task.from_row(row)


def get_task(db: Database, task_id: UUID) -> Task | None:
    rows = db.execute(f"SELECT {_COLUMNS} FROM tasks WHERE id = %s", (task_id,))
    return Task.from_row(rows[0]) if rows else None


def list_tasks(
    db: Database, *, status: Status | None, limit: int, after: tuple[datetime, UUID] | None
) -> list[Task]:
    """Newest first; `after` is the (created_at, id) of the last task of the previous page."""
    after_created, after_id = after if after is not None else (None, None)
    rows = db.execute(
        f"""
        SELECT {_COLUMNS} FROM tasks
        WHERE (%(status)s::text IS NULL OR status = %(status)s)
          AND (%(after_created)s::timestamptz IS NULL
               OR (created_at, id) < (%(after_created)s::timestamptz, %(after_id)s::uuid))
        ORDER BY created_at DESC, id DESC
        LIMIT %(limit)s
        """,
        {"status": status, "after_created": after_created, "after_id": after_id, "limit": limit},
    )
    return [Task.from_row(row) for row in rows]


@dataclass(frozen=True, kw_only=True)
class ClaimRow:
    """What claim_tasks found for one requested id."""

    task_id: UUID
    claimed: bool
    status: Status | None  # before the claim; None: no such task
    name: str | None  # name and payload only when claimed
    payload: dict[str, Any] | None


# One statement claims every claimable task of the batch and reports on the
# others. The outer SELECT reads the table as it was when the statement
# started, so `t.status` is the status before the claim (and a task another
# worker claimed concurrently shows up as not claimed here).
_CLAIM = """
WITH wanted AS (
    SELECT DISTINCT unnest(%(ids)s::uuid[]) AS id
), claimed AS (
    UPDATE tasks AS t
    SET status = 'processing', claim_token = %(token)s, claimed_at = now(),
        attempts = t.attempts + 1, updated_at = now()
    FROM wanted AS w
    WHERE t.id = w.id
      AND (t.status = 'pending'
           OR (t.status = 'processing'
               AND (t.claimed_at < now() - make_interval(secs => %(lease)s)
                    OR t.claim_token = %(token)s)))
    RETURNING t.id, t.name, t.payload
)
SELECT w.id, c.id IS NOT NULL, t.status, c.name, c.payload
FROM wanted AS w
LEFT JOIN claimed AS c ON c.id = w.id
LEFT JOIN tasks AS t ON t.id = w.id
"""


def claim_tasks(db: Database, task_ids: list[UUID], *, token: UUID, lease_seconds: float) -> list[ClaimRow]:
    """Move pending tasks (and those whose claim is older than the lease) to processing.

    A task stays claimed by `token` until finish_tasks; another worker can take
    it over only once `lease_seconds` have passed, which must be at least the
    worker's timeout so that a live claim is never taken. Repeating the
    statement with the same token is harmless (Database.execute may do so).
    """
    rows = db.execute(_CLAIM, {"ids": task_ids, "token": token, "lease": lease_seconds})
    return [
        ClaimRow(task_id=task_id, claimed=claimed, status=status, name=name, payload=payload)
        for task_id, claimed, status, name, payload in rows
    ]


@dataclass(frozen=True, kw_only=True)
class Outcome:
    task_id: UUID
    status: Literal["completed", "pending"]  # pending: processing failed, hand it back for a retry
    result: dict[str, Any] | None = None
    error: str | None = None


_FINISH = """
UPDATE tasks AS t
SET status = o.status, result = o.result, error = o.error,
    claim_token = NULL, updated_at = now()
FROM jsonb_to_recordset(%(outcomes)s) AS o(task_id uuid, status text, result jsonb, error text)
WHERE t.id = o.task_id AND t.claim_token = %(token)s
RETURNING t.id
"""


def finish_tasks(db: Database, outcomes: list[Outcome], *, token: UUID) -> set[UUID]:
    """Record the outcomes of tasks claimed with `token`; returns the ids updated.

    An id missing from the answer had its claim taken over (the lease ran out)
    and the outcome was not recorded. Safe to repeat: a second run finds the
    claim token cleared and updates nothing.
    """
    rows = db.execute(
        _FINISH,
        {
            "outcomes": Json(
                [
                    {"task_id": str(o.task_id), "status": o.status, "result": o.result, "error": o.error}
                    for o in outcomes
                ]
            ),
            "token": token,
        },
    )
    return {row[0] for row in rows}
