"""A worker's connection is lost inside a claim batch: nothing stays `processing` forever.

Three moments: after an autocommitted claim, part-way through the batch (the claimed
jobs come back through stall recovery, and the old tokens are fenced out); inside an
open transaction that claimed (the claim rolls back); and while the claim statement
itself is running (it never happened). Plus the worker's heartbeat connection lost
while a job runs: heartbeats must resume.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from notify_sql.worker import ClaimedJob, Worker
from notify_sql.wrappers import Queue
from tests.helpers.reliability import (
    JOB_TYPE,
    WORKER_APPLICATION,
    Conn,
    assert_every_job_final_exactly_once,
    enqueue,
    install_completion_log,
    recover_and_drain,
    terminate_workers,
    wait_until,
    worker_dsn,
)


def _statuses(db: Conn) -> dict[str, int]:
    return dict(db.execute("SELECT status, count(*) FROM notify.queue_jobs GROUP BY 1").fetchall())


def _blocked_claims(conn: Conn) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
        ("%claim_pending_jobs%",),
    ).fetchone()
    return int(row[0]) if row else 0


@pytest.fixture
def jobs(dsn: str, db: Conn) -> list[Any]:
    install_completion_log(db)
    return enqueue(db, 20)


@contextmanager
def worker_connection(dsn: str, autocommit: bool = True) -> Iterator[Conn]:
    conn = psycopg.connect(worker_dsn(dsn), autocommit=autocommit)
    try:
        yield conn
    finally:
        conn.close()


def test_jobs_claimed_by_a_lost_connection_come_back_and_old_tokens_are_fenced(
    dsn: str, db: Conn, jobs: list[Any]
) -> None:
    with worker_connection(dsn) as conn:
        queue = Queue(conn)
        batch = queue.claim_pending_jobs([JOB_TYPE], batch_size=10)
        for job in batch[:3]:
            assert queue.complete_queue_job(job.id, processing_token=job.processing_token)
        assert terminate_workers(db) == 1
        with pytest.raises(psycopg.OperationalError):
            queue.complete_queue_job(batch[3].id, processing_token=batch[3].processing_token)
    assert _statuses(db) == {"completed": 3, "processing": 7, "pending": 10}

    time.sleep(0.01)
    assert Queue(db).reset_stalled_jobs(stall_timeout=timedelta(milliseconds=1)) == 7
    assert _statuses(db) == {"completed": 3, "pending": 17}
    with worker_connection(dsn) as late:  # the lost worker, reconnected, finishing its batch
        assert not any(
            Queue(late).complete_queue_job(j.id, processing_token=j.processing_token)
            for j in batch[3:]
        )

    recover_and_drain(dsn, db)
    assert assert_every_job_final_exactly_once(db, jobs) == {"completed": 20}


def test_a_claim_in_a_transaction_that_loses_its_connection_rolls_back(
    dsn: str, db: Conn, jobs: list[Any]
) -> None:
    with worker_connection(dsn, autocommit=False) as conn:
        assert len(Queue(conn).claim_pending_jobs([JOB_TYPE], batch_size=10)) == 10
        assert terminate_workers(db) == 1
        with pytest.raises(psycopg.OperationalError):
            conn.commit()
    assert _statuses(db) == {"pending": 20}
    row = db.execute("SELECT max(attempts) FROM notify.queue_jobs").fetchone()
    assert row == (0,)  # the lost claim did not use up an attempt


def test_a_claim_statement_cut_off_while_running_changes_nothing(
    dsn: str, db: Conn, jobs: list[Any]
) -> None:
    outcome: list[BaseException] = []

    def claim() -> None:
        with worker_connection(dsn) as conn:
            try:
                Queue(conn).claim_pending_jobs([JOB_TYPE], batch_size=10)
            except psycopg.Error as error:
                outcome.append(error)

    with db.transaction():
        # The claim's UPDATE queues behind this lock, so it is mid-statement when cut off.
        db.execute("LOCK TABLE notify.queue_jobs IN EXCLUSIVE MODE")
        claimer = threading.Thread(target=claim)
        claimer.start()
        with psycopg.connect(dsn, autocommit=True) as observer:  # sees live activity
            wait_until(lambda: _blocked_claims(observer) == 1, 30, "the claim to block")
        assert terminate_workers(db) == 1
        claimer.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], psycopg.OperationalError)
    assert _statuses(db) == {"pending": 20}


def _heartbeat_at(db: Conn) -> Any:
    row = db.execute("SELECT max(heartbeat_at) FROM notify.queue_jobs").fetchone()
    return row[0] if row else None


def test_worker_keeps_heartbeating_after_losing_its_heartbeat_connection(
    dsn: str, db: Conn, jobs: list[Any]
) -> None:
    """Otherwise a long job would be reset as stalled and run a second time while its
    worker is alive and well."""
    release = threading.Event()

    def long_job(job: ClaimedJob) -> None:
        release.wait(30)

    worker = Worker(
        worker_dsn(dsn), [JOB_TYPE], long_job, batch_size=1, heartbeat_interval=0.1, listen=False
    )
    runner = threading.Thread(target=worker.run, kwargs={"install_signal_handler": False})
    runner.start()
    try:
        wait_until(lambda: _heartbeat_at(db) is not None, 30, "a first heartbeat")
        lost = db.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE query LIKE %s AND application_name = %s",
            ("%heartbeat_queue_job%", WORKER_APPLICATION),
        ).fetchone()
        assert lost == (1,)
        before = _heartbeat_at(db)
        time.sleep(1)  # ten heartbeat intervals
        assert _heartbeat_at(db) > before, "no heartbeat since the connection was lost"
    finally:
        release.set()
        worker.stop()
        runner.join(timeout=30)
