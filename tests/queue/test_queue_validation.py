"""Every invalid input raises 22023 naming its parameter and writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from psycopg.types.json import Jsonb

from notify_sql.errors import InvalidArgument
from notify_sql.queue import ClaimedJob, NewJob, Queue
from notify_sql.rpc import call_value

Conn = psycopg.Connection[Any]
Attempt = Callable[[Queue, ClaimedJob], object]


def _bulk(conn: Conn, payload: object) -> object:
    return call_value(conn, "add_queue_jobs", {"p_jobs": Jsonb(payload)})


USER = uuid4()
CASES: list[tuple[str, str, Attempt]] = [
    ("claim: no types", "p_job_types", lambda q, j: q.claim([], 5)),
    ("claim: NULL type", "p_job_types", lambda q, j: q.claim(["t", None], 5)),  # type: ignore[list-item]
    ("claim: batch 0", "p_batch_size", lambda q, j: q.claim(["t"], 0)),
    ("claim: batch 1001", "p_batch_size", lambda q, j: q.claim(["t"], 1001)),
    ("complete: NULL token", "p_processing_token", lambda q, j: q.complete(j.id, None)),
    ("fail: NULL token", "p_processing_token", lambda q, j: q.fail(j.id, None, "x")),
    ("fail: NULL retry", "p_retry", lambda q, j: q.fail(j.id, j.processing_token, "x", None)),  # type: ignore[arg-type]
    ("heartbeat: NULL token", "p_processing_token", lambda q, j: q.heartbeat(j.id, None)),
    (
        "complete_many: length mismatch",
        "p_processing_tokens",
        lambda q, j: q.complete_many([j.id], []),
    ),
    (
        "complete_many: results mismatch",
        "p_results",
        lambda q, j: q.complete_many([j.id], [j.processing_token], [None, None]),
    ),
    (
        "complete_many: too many",
        "p_job_ids",
        lambda q, j: q.complete_many([uuid4()] * 1001, [uuid4()] * 1001),
    ),
    (
        "fail_many: messages mismatch",
        "p_error_messages",
        lambda q, j: q.fail_many([j.id], [j.processing_token], []),
    ),
    (
        "release_many: NULL token",
        "p_processing_tokens",
        lambda q, j: q.release_many([j.id], [None]),  # type: ignore[list-item]
    ),
    ("reset: zero timeout", "p_stall_timeout", lambda q, j: q.reset_stalled(timedelta(0))),
    (
        "reset: negative timeout",
        "p_stall_timeout",
        lambda q, j: q.reset_stalled(timedelta(seconds=-1)),
    ),
    ("reset: batch 0", "p_batch_size", lambda q, j: q.reset_stalled(batch_size=0)),
    ("add: empty type", "p_job_type", lambda q, j: q.add("", {})),
    (
        "add: array metadata",
        "p_metadata",
        lambda q, j: call_value(
            q.conn,
            "add_queue_job",
            {"p_user_id": None, "p_job_type": "t", "p_metadata": Jsonb([1])},
        ),
    ),
    ("add: NULL metadata", "p_metadata", lambda q, j: q.add("t", None)),  # type: ignore[arg-type]
    ("add: NULL priority", "p_priority", lambda q, j: q.add("t", {}, priority=None)),  # type: ignore[arg-type]
    (
        "add: infinite schedule",
        "p_scheduled_for",
        lambda q, j: call_value(
            q.conn,
            "add_queue_job",
            {"p_user_id": None, "p_job_type": "t", "p_metadata": {}, "p_scheduled_for": "infinity"},
        ),
    ),
    ("add: empty dedup key", "p_dedup_key", lambda q, j: q.add("t", {}, dedup_key="")),
    ("add_many: not an array", "p_jobs", lambda q, j: _bulk(q.conn, {"job_type": "t"})),
    ("add_many: empty", "p_jobs", lambda q, j: q.add_many([])),
    ("add_many: too many", "p_jobs", lambda q, j: q.add_many([NewJob("t")] * 1001)),
    ("add_many: bad element", "p_jobs", lambda q, j: q.add_many([NewJob("t"), NewJob("")])),
    (
        "add_many: metadata",
        "p_jobs",
        lambda q, j: _bulk(q.conn, [{"job_type": "t", "metadata": 1}]),
    ),
    ("add_many: unknown key", "p_jobs", lambda q, j: _bulk(q.conn, [{"job_type": "t", "typo": 1}])),
    (
        "add_many: bad uuid",
        "p_jobs",
        lambda q, j: _bulk(q.conn, [{"job_type": "t", "user_id": "x"}]),
    ),
    (
        "add_many: bad time",
        "p_jobs",
        lambda q, j: _bulk(q.conn, [{"job_type": "t", "scheduled_for": "soon"}]),
    ),
    ("add_many: attempts", "p_jobs", lambda q, j: q.add_many([NewJob("t", max_attempts=0)])),
    ("cancel_jobs: NULL user", "p_user_id", lambda q, j: q.cancel_jobs(None, "t")),  # type: ignore[arg-type]
    ("cancel_jobs: empty type", "p_job_type", lambda q, j: q.cancel_jobs(USER, "")),
    (
        "cancel_jobs: array filter",
        "p_metadata_filter",
        lambda q, j: call_value(
            q.conn,
            "cancel_jobs_atomic",
            {"p_user_id": USER, "p_job_type": "t", "p_metadata_filter": Jsonb([])},
        ),
    ),
    (
        "cancel_jobs: unknown status",
        "p_allowed_statuses",
        lambda q, j: q.cancel_jobs(USER, "t", None, ["pendng"]),
    ),
    (
        "cancel_jobs: finished status",
        "p_allowed_statuses",
        lambda q, j: q.cancel_jobs(USER, "t", None, ["completed"]),
    ),
    (
        "cancel_jobs: no status",
        "p_allowed_statuses",
        lambda q, j: q.cancel_jobs(USER, "t", None, []),
    ),
    (
        "cancel_briefs: NULL user",
        "p_user_id",
        lambda q, j: q.cancel_briefs_for_date(None, "2025-01-01"),  # type: ignore[arg-type]
    ),
    (
        "cancel_briefs: bad date",
        "p_brief_date",
        lambda q, j: q.cancel_briefs_for_date(USER, "2025-02-30"),
    ),
    (
        "cancel_briefs: free text",
        "p_brief_date",
        lambda q, j: q.cancel_briefs_for_date(USER, "today"),
    ),
    ("cancel_one: NULL id", "p_job_id", lambda q, j: q.cancel(None, "x")),  # type: ignore[arg-type]
    ("cancel_one: empty reason", "p_reason", lambda q, j: q.cancel(j.id, "", True)),
    ("prune: zero age", "p_older_than", lambda q, j: q.prune(timedelta(0))),
    ("prune: batch 0", "p_batch_size", lambda q, j: q.prune(timedelta(days=1), 0)),
]


def fingerprint(db: Conn) -> object:
    row = db.execute(
        "SELECT count(*), md5(coalesce(string_agg(q::text, '|' ORDER BY id), '')) "
        "FROM notify.queue_jobs q"
    ).fetchone()
    return row


@pytest.mark.parametrize(
    ("parameter", "attempt"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_invalid_input_raises_22023_and_writes_nothing(
    service_db: Conn, db: Conn, parameter: str, attempt: Attempt
) -> None:
    queue = Queue(service_db)
    queue.add_many([NewJob("t", user_id=USER, dedup_key="d"), NewJob("t", user_id=USER)])
    [job] = queue.claim(["t"], 1)
    db.execute("UPDATE notify.queue_jobs SET completed_at = now() - interval '30 days'")
    before = fingerprint(db)
    with pytest.raises(InvalidArgument) as raised:
        attempt(queue, job)
    assert raised.value.parameter == parameter
    assert str(raised.value).startswith(parameter)
    assert fingerprint(db) == before
