"""The task API. create_app takes its database and queue, so tests pass real ones."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID, uuid4

import psycopg2
from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from taskdb.connection import Database
from taskdb.tasks import Status, Task, get_task, insert_task, list_tasks

from api.queue import QueueUnavailable, TaskQueue

log = logging.getLogger(__name__)


class NewTask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="what the task is called")
    payload: dict[str, Any] = Field(default_factory=dict, description="a JSON object handed to the worker")


class TaskPage(BaseModel):
    # The stored task is the response shape: FastAPI serialises the dataclass as it is.
    items: list[Task]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last page")


def encode_cursor(task: Task) -> str:
    raw = json.dumps([task.created_at.isoformat(), str(task.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        created_at, task_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(created_at), UUID(task_id)
    except (binascii.Error, UnicodeError, ValueError, TypeError) as err:
        # Same shape as FastAPI's own 422s, so clients parse one format.
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "cursor"),
                    "msg": "not a cursor returned by GET /tasks",
                    "input": cursor,
                }
            ]
        ) from err


def create_app(db: Database, queue: TaskQueue) -> FastAPI:
    app = FastAPI(title="lambdakit tasks", version="1.0")

    @app.exception_handler(psycopg2.OperationalError)
    @app.exception_handler(psycopg2.InterfaceError)
    def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.error("database unavailable: %s", exc)
        return JSONResponse({"detail": "database unavailable, retry later"}, status_code=503)

    @app.exception_handler(QueueUnavailable)
    def queue_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.error("queue unavailable: %s", exc)
        return JSONResponse(
            {"detail": "the task could not be queued and was not created, retry later"}, status_code=503
        )

    @app.post("/tasks", status_code=201)
    def create_task(new: NewTask, response: Response) -> Task:
        task_id = uuid4()
        # Insert, send, then commit. A failed send rolls the insert back, so a
        # pending task always has its message and the client is told to retry
        # (503); nothing is left pending forever. If the commit fails after the
        # send, the message names a task that does not exist: the worker fails
        # it as unknown and it ends in the dead-letter queue, visible. The
        # other order (commit, send, mark failed on error) would leave a task
        # pending forever whenever the sandbox died between commit and send.
        with db.transaction() as cur:
            task = insert_task(cur, task_id, new.name, new.payload)
            queue.send(task_id)
        response.headers["Location"] = f"/tasks/{task_id}"
        return task

    @app.get("/tasks/{task_id}")
    def read_task(task_id: UUID) -> Task:
        task = get_task(db, task_id)
        if task is None:
            raise HTTPException(status_code=404, detail=f"no task {task_id}")
        return task

    @app.get("/tasks")
    def read_tasks(
        status: Status | None = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: str | None = None,
    ) -> TaskPage:
        after = decode_cursor(cursor) if cursor else None
        # One extra row tells whether another page exists without a COUNT.
        tasks = list_tasks(db, status=status, limit=limit + 1, after=after)
        page = tasks[:limit]
        next_cursor = encode_cursor(page[-1]) if len(tasks) > limit else None
        return TaskPage(items=page, next_cursor=next_cursor)

    @app.get("/health")
    def health() -> dict[str, str]:
        db.ping()
        return {"status": "ok", "database": "ok"}

    return app
