"""Worker throughput: the batched worker against a naive one-commit-per-message handler.

Both process the same number of tasks, in the same SQS batch shape, on one
throwaway PostgreSQL server (fsync on, as a real database) started for the
run, in alternating rounds so neither gets a warmer cache. Prints tasks per
second and client-server round trips per batch, counted at the driver.
The server is on loopback: in a VPC every round trip also costs the network's
latency (around half a millisecond), which widens the gap in proportion to
the round trips.

Run: .venv/bin/python bench/worker_throughput.py [--tasks N] [--batch-size N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

ROOT = Path(__file__).resolve().parents[1]
# The function packages are top-level in Lambda; pgsupport is the tests' cluster helper.
sys.path[:0] = [str(ROOT / "functions"), str(ROOT / "tests" / "functions")]

import psycopg2  # noqa: E402
import psycopg2.extensions  # noqa: E402
from pgsupport import CountingConnection, throwaway_cluster  # noqa: E402
from taskdb.connection import Database, Settings  # noqa: E402
from taskdb.tasks import insert_task  # noqa: E402
from worker.batch import BatchResponse, Worker, parse_task_id, perform_task  # noqa: E402

from builder.app.db import apply, discover  # noqa: E402

Event = dict[str, Any]


class NaiveHandler:
    """What a first version usually looks like: each message in its own two transactions."""

    def __init__(self, conn: psycopg2.extensions.connection) -> None:
        self.conn = conn

    def handle(self, event: Event) -> BatchResponse:
        failures = []
        for record in event["Records"]:
            task_id = parse_task_id(record["body"])
            with self.conn.cursor() as cur:
                cur.execute(
                    "UPDATE tasks SET status = 'processing', attempts = attempts + 1, updated_at = now()"
                    " WHERE id = %s AND status = 'pending' RETURNING name, payload",
                    (task_id,),
                )
                row = cur.fetchone()
                self.conn.commit()
                if row is None:
                    failures.append({"itemIdentifier": record["messageId"]})
                    continue
                result = perform_task(*row)
                cur.execute(
                    "UPDATE tasks SET status = 'completed', result = %s, updated_at = now() WHERE id = %s",
                    (json.dumps(result), task_id),
                )
                self.conn.commit()
        return {"batchItemFailures": failures}


@dataclass
class Score:
    tasks: int = 0
    batches: int = 0
    seconds: float = 0.0
    round_trips: int = 0


def make_tasks(db: Database, count: int) -> list[UUID]:
    ids = [uuid4() for _ in range(count)]
    with db.transaction() as cur:
        for i, task_id in enumerate(ids):
            insert_task(cur, task_id, f"bench-{i}", {"n": i, "tags": ["a", "b"]})
    return ids


def batches(ids: list[UUID], size: int) -> list[Event]:
    return [
        {
            "Records": [
                {"messageId": str(i), "body": json.dumps({"task_id": str(task_id)})}
                for i, task_id in enumerate(ids[start : start + size])
            ]
        }
        for start in range(0, len(ids), size)
    ]


def run(
    handle: Callable[[Event], BatchResponse], conn: CountingConnection, events: list[Event], score: Score
) -> None:
    before = conn.round_trips
    started = time.perf_counter()
    for event in events:
        if handle(event)["batchItemFailures"]:
            raise RuntimeError("a record failed; the comparison would be meaningless")
    score.seconds += time.perf_counter() - started
    score.round_trips += conn.round_trips - before
    score.batches += len(events)
    score.tasks += sum(len(e["Records"]) for e in events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000, help="tasks per handler (default 3000)")
    parser.add_argument(
        "--batch-size", type=int, default=10, help="SQS BatchSize (default 10, as in template.yaml)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    args = parser.parse_args()
    per_round = args.tasks // args.rounds

    with throwaway_cluster(fsync=True) as cluster:
        dsn = cluster.create_database("tasks")
        setup = psycopg2.connect(dsn)
        apply(setup, discover(ROOT / "migrations"))
        setup.close()

        db = Database(Settings(dsn=dsn), connection_factory=CountingConnection)
        worker = Worker(db, lease_seconds=30)
        db.ping()
        batched_conn = db.connection
        naive_conn = psycopg2.connect(dsn, connection_factory=CountingConnection)
        assert isinstance(batched_conn, CountingConnection) and isinstance(naive_conn, CountingConnection)
        naive = NaiveHandler(naive_conn)

        scores = {"batched": Score(), "naive": Score()}
        for _ in range(args.rounds):
            run(
                worker.handle,
                batched_conn,
                batches(make_tasks(db, per_round), args.batch_size),
                scores["batched"],
            )
            run(
                naive.handle, naive_conn, batches(make_tasks(db, per_round), args.batch_size), scores["naive"]
            )
        naive_conn.close()
        db.close()

    print(
        f"worker throughput: {scores['batched'].tasks} tasks per handler in batches of {args.batch_size},"
        f" PostgreSQL (fsync on) on loopback, {args.rounds} alternating rounds"
    )
    print(f"{'handler':<34}{'tasks/s':>10}{'round trips/batch':>20}")
    labels = {
        "batched": "batched worker (claim + finish)",
        "naive": "naive (2 commits per message)",
    }
    for key, score in scores.items():
        print(
            f"{labels[key]:<34}{score.tasks / score.seconds:>10.0f}{score.round_trips / score.batches:>20.1f}"
        )
    speedup = (scores["batched"].tasks / scores["batched"].seconds) / (
        scores["naive"].tasks / scores["naive"].seconds
    )
    trips = (scores["naive"].round_trips / scores["naive"].batches) / (
        scores["batched"].round_trips / scores["batched"].batches
    )
    print(f"batched/naive: {speedup:.1f}x the tasks per second, {trips:.0f}x fewer round trips")


if __name__ == "__main__":
    main()
