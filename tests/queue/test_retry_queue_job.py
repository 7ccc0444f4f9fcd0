"""retry_queue_job: a failed job goes back to pending in place (same id), with attempts
kept and at least one more run; anything not failed is left alone (false)."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from notify_sql.wrappers import Queue
from tests.helpers.concurrency import released_together
from tests.helpers.queue import new_job

Conn = psycopg.Connection[Any]


def _run_and_fail(queue: Queue, job_type: str, retry: bool = True) -> UUID:
    [job] = queue.claim_pending_jobs([job_type], batch_size=1)
    assert queue.fail_queue_job(job.id, "boom", retry=retry, processing_token=job.processing_token)
    assert job.id is not None
    return job.id


def _row(db: Conn, job_id: UUID) -> tuple[Any, ...]:
    row = db.execute(
        "SELECT status, attempts, max_attempts, processing_token, completed_at, "
        "scheduled_for <= now() FROM notify.queue_jobs WHERE id = %s",
        (job_id,),
    ).fetchone()
    assert row is not None
    return tuple(row)


def _exhaust(db: Conn, queue: Queue, job_type: str) -> UUID:
    """A job of max_attempts 2 that failed both runs (failed for good)."""
    [job_id] = queue.add_queue_jobs([new_job(job_type, {"k": 1}, max_attempts=2)]) or []
    for _ in range(2):
        _run_and_fail(queue, job_type)
        db.execute("UPDATE notify.queue_jobs SET scheduled_for = now() WHERE id = %s", (job_id,))
    assert _row(db, job_id)[:3] == ("failed", 2, 2)
    return job_id


def test_an_exhausted_job_runs_exactly_once_more(db: Conn) -> None:
    queue = Queue(db)
    job_id = _exhaust(db, queue, "t")
    assert queue.retry_queue_job(job_id) is True
    assert _row(db, job_id) == ("pending", 2, 3, None, None, True)
    [again] = queue.claim_pending_jobs(["t"], batch_size=1)
    assert again.id == job_id and again.metadata["k"] == 1
    # That one more run fails: failed for good again.
    assert queue.fail_queue_job(job_id, "boom", processing_token=again.processing_token)
    assert _row(db, job_id)[:3] == ("failed", 3, 3)


def test_a_job_failed_early_gets_the_rest_of_its_budget(db: Conn) -> None:
    queue = Queue(db)
    job_id = queue.add_queue_job(None, "t", {})  # max_attempts 3
    assert job_id is not None
    _run_and_fail(queue, "t", retry=False)
    assert queue.retry_queue_job(job_id) is True
    assert _row(db, job_id)[:3] == ("pending", 1, 3)


def test_only_failed_jobs_are_retried(db: Conn) -> None:
    queue = Queue(db)
    pending = queue.add_queue_job(None, "p", {})
    cancelled = queue.add_queue_job(None, "c", {})
    queue.cancel_job_with_reason(cancelled, "no")
    done = queue.add_queue_job(None, "d", {})
    [claimed] = queue.claim_pending_jobs(["d"], batch_size=1)
    queue.complete_queue_job(done, processing_token=claimed.processing_token)
    before = db.execute("SELECT * FROM notify.queue_jobs ORDER BY id").fetchall()
    for job_id in (pending, cancelled, done, uuid4()):
        assert queue.retry_queue_job(job_id) is False
    assert db.execute("SELECT * FROM notify.queue_jobs ORDER BY id").fetchall() == before
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=r"^p_job_id"):
        db.execute("SELECT notify.retry_queue_job(NULL)")


def test_a_live_job_holding_the_dedup_key_wins(db: Conn) -> None:
    queue = Queue(db)
    [job_id] = queue.add_queue_jobs([new_job("t", max_attempts=1, dedup_key="once")]) or []
    _run_and_fail(queue, "t")
    live = queue.add_queue_job(None, "t", {}, dedup_key="once")
    assert live != job_id
    assert queue.retry_queue_job(job_id) is False
    assert _row(db, job_id)[0] == "failed"


def test_concurrent_retries_put_the_job_back_once(db: Conn, dsn: str) -> None:
    queue = Queue(db)
    job_id = _exhaust(db, queue, "t")
    results = released_together(
        dsn,
        [lambda c: c.execute("SELECT notify.retry_queue_job(%s)", (job_id,)).fetchone()] * 4,
        role="service_role",
    )
    assert sorted(r[0] for r in results if r is not None) == [False, False, False, True]
    assert _row(db, job_id)[:3] == ("pending", 2, 3)
