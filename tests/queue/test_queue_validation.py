"""Every invalid input raises 22023 naming its parameter and writes nothing."""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from psycopg.types.json import Jsonb

from notify_sql.errors import InvalidArgument
from notify_sql.rpc import call_value
from notify_sql.wrappers import Queue
from notify_sql.wrappers.queue import ClaimPendingJobsRow
from tests.helpers.queue import new_job

Conn = psycopg.Connection[Any]
Attempt = Callable[[Queue, ClaimPendingJobsRow], object]


def _bulk(conn: Conn, payload: object) -> object:
    return call_value(conn, "add_queue_jobs", {"p_jobs": Jsonb(payload)})


USER = uuid4()
ABSURD = "178000000 years"  # beyond now() - interval: a 22008 unless refused first
# 20,000 random letters: TOAST cannot compress them below the btree row limit.
INCOMPRESSIBLE = "".join(random.Random(0).choices(string.ascii_letters, k=20_000))
CASES: list[tuple[str, str, Attempt]] = [
    ("claim: no types", "p_job_types", lambda q, j: q.claim_pending_jobs([], batch_size=5)),
    (
        "claim: NULL type",
        "p_job_types",
        lambda q, j: q.claim_pending_jobs(["t", None], batch_size=5),
    ),
    ("claim: batch 0", "p_batch_size", lambda q, j: q.claim_pending_jobs(["t"], batch_size=0)),
    (
        "claim: batch 1001",
        "p_batch_size",
        lambda q, j: q.claim_pending_jobs(["t"], batch_size=1001),
    ),
    (
        "complete: NULL token",
        "p_processing_token",
        lambda q, j: q.complete_queue_job(j.id, processing_token=None),
    ),
    (
        "fail: NULL token",
        "p_processing_token",
        lambda q, j: q.fail_queue_job(j.id, "x", processing_token=None),
    ),
    (
        "fail: NULL retry",
        "p_retry",
        lambda q, j: q.fail_queue_job(j.id, "x", processing_token=j.processing_token, retry=None),
    ),
    ("heartbeat: NULL token", "p_processing_token", lambda q, j: q.heartbeat_queue_job(j.id, None)),
    (
        "complete_many: length mismatch",
        "p_processing_tokens",
        lambda q, j: q.complete_queue_jobs([j.id], []),
    ),
    (
        "complete_many: results mismatch",
        "p_results",
        lambda q, j: q.complete_queue_jobs([j.id], [j.processing_token], results=[None, None]),
    ),
    (
        "complete_many: too many",
        "p_job_ids",
        lambda q, j: q.complete_queue_jobs([uuid4()] * 1001, [uuid4()] * 1001),
    ),
    (
        "fail_many: messages mismatch",
        "p_error_messages",
        lambda q, j: q.fail_queue_jobs([j.id], [j.processing_token], []),
    ),
    (
        "release_many: NULL token",
        "p_processing_tokens",
        lambda q, j: q.release_queue_jobs([j.id], [None]),
    ),
    (
        "reset: zero timeout",
        "p_stall_timeout",
        lambda q, j: q.reset_stalled_jobs(stall_timeout=timedelta(0)),
    ),
    (
        "reset: negative timeout",
        "p_stall_timeout",
        lambda q, j: q.reset_stalled_jobs(stall_timeout=timedelta(seconds=-1)),
    ),
    ("reset: batch 0", "p_batch_size", lambda q, j: q.reset_stalled_jobs(batch_size=0)),
    ("add: empty type", "p_job_type", lambda q, j: q.add_queue_job(None, "", {})),
    (
        "add: array metadata",
        "p_metadata",
        lambda q, j: call_value(
            q.conn,
            "add_queue_job",
            {"p_user_id": None, "p_job_type": "t", "p_metadata": Jsonb([1])},
        ),
    ),
    ("add: NULL metadata", "p_metadata", lambda q, j: q.add_queue_job(None, "t", None)),
    (
        "add: NULL priority",
        "p_priority",
        lambda q, j: q.add_queue_job(None, "t", {}, priority=None),
    ),
    (
        "add: infinite schedule",
        "p_scheduled_for",
        lambda q, j: call_value(
            q.conn,
            "add_queue_job",
            {"p_user_id": None, "p_job_type": "t", "p_metadata": {}, "p_scheduled_for": "infinity"},
        ),
    ),
    (
        "add: empty dedup key",
        "p_dedup_key",
        lambda q, j: q.add_queue_job(None, "t", {}, dedup_key=""),
    ),
    ("add_many: not an array", "p_jobs", lambda q, j: _bulk(q.conn, {"job_type": "t"})),
    ("add_many: empty", "p_jobs", lambda q, j: q.add_queue_jobs([])),
    ("add_many: too many", "p_jobs", lambda q, j: q.add_queue_jobs([new_job("t")] * 1001)),
    ("add_many: bad element", "p_jobs", lambda q, j: q.add_queue_jobs([new_job("t"), new_job("")])),
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
    ("add_many: attempts", "p_jobs", lambda q, j: q.add_queue_jobs([new_job("t", max_attempts=0)])),
    ("cancel_jobs: NULL user", "p_user_id", lambda q, j: q.cancel_jobs_atomic(None, "t")),
    ("cancel_jobs: empty type", "p_job_type", lambda q, j: q.cancel_jobs_atomic(USER, "")),
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
        lambda q, j: q.cancel_jobs_atomic(
            USER, "t", metadata_filter=None, allowed_statuses=["pendng"]
        ),
    ),
    (
        "cancel_jobs: finished status",
        "p_allowed_statuses",
        lambda q, j: q.cancel_jobs_atomic(
            USER, "t", metadata_filter=None, allowed_statuses=["completed"]
        ),
    ),
    (
        "cancel_jobs: no status",
        "p_allowed_statuses",
        lambda q, j: q.cancel_jobs_atomic(USER, "t", metadata_filter=None, allowed_statuses=[]),
    ),
    (
        "cancel_briefs: NULL user",
        "p_user_id",
        lambda q, j: q.cancel_brief_jobs_for_date(None, "2025-01-01")[0],
    ),
    (
        "cancel_briefs: bad date",
        "p_brief_date",
        lambda q, j: q.cancel_brief_jobs_for_date(USER, "2025-02-30")[0],
    ),
    (
        "cancel_briefs: free text",
        "p_brief_date",
        lambda q, j: q.cancel_brief_jobs_for_date(USER, "today")[0],
    ),
    ("cancel_one: NULL id", "p_job_id", lambda q, j: q.cancel_job_with_reason(None, "x")),
    (
        "cancel_one: empty reason",
        "p_reason",
        lambda q, j: q.cancel_job_with_reason(j.id, "", allow_processing=True),
    ),
    ("prune: zero age", "p_older_than", lambda q, j: q.prune_queue_jobs(older_than=timedelta(0))),
    # Oversized input: refused with the parameter's name, not a 22008 from inside the
    # function, nor an index-row-size error from the unique dedup index.
    (
        "reset: absurd timeout",
        "p_stall_timeout",
        lambda q, j: call_value(q.conn, "reset_stalled_jobs", {"p_stall_timeout": ABSURD}),
    ),
    (
        "prune: absurd age",
        "p_older_than",
        lambda q, j: call_value(q.conn, "prune_queue_jobs", {"p_older_than": ABSURD}),
    ),
    ("add: huge type", "p_job_type", lambda q, j: q.add_queue_job(None, "x" * 10_000, {})),
    (
        "add: huge dedup key",
        "p_dedup_key",
        lambda q, j: q.add_queue_job(None, "t", {}, dedup_key=INCOMPRESSIBLE),
    ),
    (
        "add_many: huge dedup key",
        "p_jobs",
        lambda q, j: q.add_queue_jobs([new_job("t", dedup_key=INCOMPRESSIBLE)]),
    ),
    (
        "prune: batch 0",
        "p_batch_size",
        lambda q, j: q.prune_queue_jobs(older_than=timedelta(days=1), batch_size=0),
    ),
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
    queue.add_queue_jobs([new_job("t", user_id=USER, dedup_key="d"), new_job("t", user_id=USER)])
    [job] = queue.claim_pending_jobs(["t"], batch_size=1)
    db.execute("UPDATE notify.queue_jobs SET completed_at = now() - interval '30 days'")
    before = fingerprint(db)
    with pytest.raises(InvalidArgument) as raised:
        attempt(queue, job)
    assert raised.value.parameter == parameter
    assert str(raised.value).startswith(parameter)
    assert fingerprint(db) == before
