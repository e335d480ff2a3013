"""The API over real HTTP (uvicorn), with PostgreSQL and SQS behind it; and its Lambda adapter."""

from __future__ import annotations

import base64
import importlib
import json
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from harness import ROOT, Poller, Queues
from pgsupport import Cluster
from taskdb.connection import Database


def _create(api_url: str, name: str = "resize", payload: dict[str, Any] | None = None) -> dict[str, Any]:
    response = httpx.post(f"{api_url}/tasks", json={"name": name, "payload": payload or {}})
    assert response.status_code == 201, response.text
    return response.json()


def test_create_stores_a_pending_task_and_queues_its_id(api_url: str, db: Database, poller: Poller) -> None:
    response = httpx.post(f"{api_url}/tasks", json={"name": "resize", "payload": {"width": 640}})

    assert response.status_code == 201
    task = response.json()
    assert task["status"] == "pending"
    assert task["payload"] == {"width": 640}
    assert response.headers["location"] == f"/tasks/{task['id']}"
    assert db.execute("SELECT status FROM tasks WHERE id = %s", (UUID(task["id"]),)) == [("pending",)]
    (message,) = poller.receive()
    assert json.loads(message["Body"]) == {"task_id": task["id"]}


@pytest.mark.parametrize(
    ("body", "location", "message"),
    [
        ({"payload": {}}, ["body", "name"], "Field required"),
        ({"name": ""}, ["body", "name"], "String should have at least 1 character"),
        ({"name": "x" * 201}, ["body", "name"], "String should have at most 200 characters"),
        ({"name": "a", "payload": [1, 2]}, ["body", "payload"], "Input should be a valid dictionary"),
        ({"name": "a", "priority": 1}, ["body", "priority"], "Extra inputs are not permitted"),
        ("{not json", ["body", 1], "JSON decode error"),
    ],
)
def test_bad_input_is_a_422_that_says_what_is_wrong(
    api_url: str, db: Database, poller: Poller, body: Any, location: list[Any], message: str
) -> None:
    content = body if isinstance(body, str) else json.dumps(body)

    response = httpx.post(f"{api_url}/tasks", content=content, headers={"content-type": "application/json"})

    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == location
    assert error["msg"] == message
    assert db.execute("SELECT count(*) FROM tasks") == [(0,)]
    assert poller.receive() == []


def test_a_failed_send_creates_nothing(api_url: str, db: Database, sqs: Any, queues: Queues) -> None:
    sqs.delete_queue(QueueUrl=queues.url)

    response = httpx.post(f"{api_url}/tasks", json={"name": "orphan"})

    assert response.status_code == 503
    assert "not created" in response.json()["detail"]
    assert db.execute("SELECT count(*) FROM tasks") == [(0,)]


def test_read_one_task(api_url: str) -> None:
    created = _create(api_url, "thumbnail", {"page": 3})

    response = httpx.get(f"{api_url}/tasks/{created['id']}")

    assert response.status_code == 200
    assert response.json() == created


def test_an_unknown_task_is_404_and_a_malformed_id_422(api_url: str) -> None:
    missing = uuid4()

    assert httpx.get(f"{api_url}/tasks/{missing}").json() == {"detail": f"no task {missing}"}
    assert httpx.get(f"{api_url}/tasks/{missing}").status_code == 404
    malformed = httpx.get(f"{api_url}/tasks/not-a-uuid")
    assert malformed.status_code == 422
    assert malformed.json()["detail"][0]["loc"] == ["path", "task_id"]


def test_list_pages_through_every_task_newest_first(api_url: str) -> None:
    created = [_create(api_url, f"task-{i}")["id"] for i in range(5)]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0

    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = httpx.get(f"{api_url}/tasks", params=params).json()
        seen += [task["id"] for task in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == 3
    assert seen == list(reversed(created))


def test_list_filters_by_status(api_url: str, db: Database) -> None:
    first, second = _create(api_url)["id"], _create(api_url)["id"]
    db.execute("UPDATE tasks SET status = 'completed' WHERE id = %s", (UUID(first),))

    completed = httpx.get(f"{api_url}/tasks", params={"status": "completed"}).json()
    pending = httpx.get(f"{api_url}/tasks", params={"status": "pending"}).json()

    assert [t["id"] for t in completed["items"]] == [first]
    assert [t["id"] for t in pending["items"]] == [second]
    assert completed["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "location"),
    [
        ({"status": "done"}, ["query", "status"]),
        ({"limit": 0}, ["query", "limit"]),
        ({"limit": 101}, ["query", "limit"]),
        ({"cursor": "garbage"}, ["query", "cursor"]),
        ({"cursor": base64.urlsafe_b64encode(b'["yesterday", "x"]').decode()}, ["query", "cursor"]),
    ],
)
def test_bad_list_parameters_are_422(api_url: str, params: dict[str, Any], location: list[str]) -> None:
    response = httpx.get(f"{api_url}/tasks", params=params)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == location


def test_health_follows_the_database(api_url: str, pg: Cluster) -> None:
    assert httpx.get(f"{api_url}/health").json() == {"status": "ok", "database": "ok"}

    pg.stop()
    down = httpx.get(f"{api_url}/health", timeout=15)
    pg.start()
    back = httpx.get(f"{api_url}/health")

    assert down.status_code == 503
    assert down.json() == {"detail": "database unavailable, retry later"}
    assert back.status_code == 200


def _sample_event(name: str, *, path: str | None = None, body: str | None = None) -> dict[str, Any]:
    """One of events/*.json (API Gateway HTTP API, payload 2.0), optionally retargeted."""
    event = json.loads((ROOT / "events" / name).read_text())
    if path is not None:
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
    if body is not None:
        event["body"] = body
    return event


def test_the_lambda_handler_serves_the_sample_http_api_events(
    lambda_env: pytest.MonkeyPatch, poller: Poller
) -> None:
    main = importlib.import_module("api.main")

    created = main.handler(_sample_event("http-create-task.json"), None)
    task = json.loads(created["body"])
    fetched = main.handler(_sample_event("http-health.json", path=f"/tasks/{task['id']}"), None)
    health = main.handler(_sample_event("http-health.json"), None)
    invalid = main.handler(_sample_event("http-create-task.json", body="{}"), None)

    assert created["statusCode"] == 201
    assert json.loads(poller.receive()[0]["Body"]) == {"task_id": task["id"]}
    assert fetched["statusCode"] == 200
    assert json.loads(fetched["body"])["name"] == "resize"
    assert (health["statusCode"], json.loads(health["body"])) == (200, {"status": "ok", "database": "ok"})
    assert invalid["statusCode"] == 422
