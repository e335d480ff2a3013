"""Entry points: `handler` for Lambda (API Gateway HTTP API, payload 2.0), `app` for uvicorn.

TASK_QUEUE_URL=... DATABASE_URL=... uvicorn --app-dir functions api.main:app
"""

from __future__ import annotations

from mangum import Mangum
from taskdb.connection import Database

from api.app import create_app
from api.queue import SqsTaskQueue

# Built at cold start; the connection and the SQS client live while the sandbox is warm.
app = create_app(Database.from_env(), SqsTaskQueue.from_env())
handler = Mangum(app, lifespan="off")
