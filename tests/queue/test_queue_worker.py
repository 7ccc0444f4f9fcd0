"""The worker loop against a real server: handlers, failures, wake-up, heartbeats, SIGTERM."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
import pytest

from notify_sql.worker import ClaimedJob, JsonObject, Worker, WorkerStats
from notify_sql.wrappers import Queue
from tests.helpers.queue import new_job

Conn = psycopg.Connection[Any]


@contextmanager
def running(worker: Worker) -> Iterator[None]:
    thread = threading.Thread(target=worker.run, kwargs={"install_signal_handler": False})
    thread.start()
    try:
        yield
    finally:
        worker.stop()
        thread.join(timeout=30)
        assert not thread.is_alive()


def status_counts(db: Conn) -> dict[str, int]:
    rows = db.execute("SELECT status, count(*) FROM notify.queue_jobs GROUP BY 1").fetchall()
    return dict(rows)


def test_worker_completes_batches_and_fails_jobs_that_raise(dsn: str, db: Conn) -> None:
    Queue(db).add_queue_jobs([new_job("t", {"n": n}) for n in range(23)])
    seen = threading.Semaphore(0)

    def handler(job: ClaimedJob) -> JsonObject:
        seen.release()
        if job.metadata["n"] == 3:
            raise RuntimeError("boom")
        return {"double": job.metadata["n"] * 2}

    worker = Worker(dsn, ["t"], handler, batch_size=5, poll_interval=0.2)
    with running(worker):
        for _ in range(23):
            assert seen.acquire(timeout=30)
    assert (worker.stats.completed, worker.stats.failed, worker.stats.retried) == (22, 1, 1)
    assert status_counts(db) == {"completed": 22, "pending": 1}
    row = db.execute(
        "SELECT error_message, result FROM notify.queue_jobs WHERE metadata->>'n' IN ('3', '4') "
        "ORDER BY metadata->>'n'"
    ).fetchall()
    assert row == [("RuntimeError: boom", None), (None, {"double": 8})]


def test_handlers_get_each_claimed_row_exactly_as_stored(dsn: str, db: Conn) -> None:
    """The worker writes its job types into the claim statement and parses jsonb with its
    own loader: job types that need quoting in an array literal are claimed, only they,
    and every column of a claimed job (metadata included) is what the table holds."""
    odd_types = ['o\'k, {"x"} \\ é', "t ", "NULL"]
    metadata = {"text": ' spaced "quoted" \\ é 🙂 ', "nested": [1, 2.5, None, {"a": True}], "n": -3}
    Queue(db).add_queue_jobs(
        [new_job(job_type, {**metadata, "type": job_type}) for job_type in odd_types]
        + [new_job("t", {"n": 0}), new_job("NULL,t", {"n": 1})]
    )
    seen: list[ClaimedJob] = []
    everything_seen = threading.Event()

    def handler(job: ClaimedJob) -> None:
        seen.append(job)
        if len(seen) == len(odd_types):
            everything_seen.set()

    worker = Worker(dsn, odd_types, handler, poll_interval=0.2)
    with running(worker):
        assert everything_seen.wait(timeout=30)
    assert sorted(job.job_type for job in seen) == sorted(odd_types)
    for job in seen:  # enqueue adds a correlationId; everything sent comes back unchanged
        sent = {key: value for key, value in job.metadata.items() if key != "correlationId"}
        assert sent == {**metadata, "type": job.job_type}
    columns = ", ".join(name for name in ClaimedJob.__dataclass_fields__)
    rows = db.execute(
        f"SELECT {columns} FROM notify.queue_jobs WHERE id = ANY(%s)", ([job.id for job in seen],)
    ).fetchall()
    stored = {row[0]: row for row in rows}
    for job in seen:  # claimed rows before completion: status and updated_at moved on since
        row = dict(zip(ClaimedJob.__dataclass_fields__, stored[job.id], strict=True))
        row.update(status="processing", updated_at=job.updated_at, completed_at=None)
        assert vars(job) == row
    assert status_counts(db) == {"completed": 3, "pending": 2}


def test_a_failed_last_attempt_is_not_counted_as_retried(dsn: str, db: Conn) -> None:
    """A claimed row's attempts counts the earlier attempts: a job is retried while
    attempts + 1 < max_attempts, so these three are failed for good, not retried."""
    Queue(db).add_queue_jobs(
        [new_job("t", {"n": 0}, max_attempts=1)]
        + [new_job("t", {"n": n}, max_attempts=2) for n in (1, 2)]
    )
    db.execute("UPDATE notify.queue_jobs SET attempts = 1 WHERE max_attempts = 2")
    seen = threading.Semaphore(0)

    def handler(job: ClaimedJob) -> None:
        seen.release()
        raise RuntimeError("boom")

    worker = Worker(dsn, ["t"], handler, batch_size=5, poll_interval=0.2)
    with running(worker):
        for _ in range(3):
            assert seen.acquire(timeout=30)
    assert (worker.stats.failed, worker.stats.retried) == (3, 0)
    assert status_counts(db) == {"failed": 3}


def worker_is_idle(db: Conn) -> bool:
    """The worker's connection has claimed (found nothing) and sits idle: its last
    statement is the one a worker sends after a short claim, just before it waits."""
    row = db.execute(
        "SELECT count(*) > 0 FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
        "AND state = 'idle' AND query LIKE %s",
        ("%next_limited_start%",),
    ).fetchone()
    return bool(row and row[0])


@pytest.mark.parametrize("listen", [True, False])
def test_idle_worker_picks_up_new_jobs(dsn: str, db: Conn, listen: bool) -> None:
    handled = threading.Event()
    # With LISTEN the poll interval is far longer than the wait below, so only the
    # notification can wake the worker; without it, polling alone must get there.
    worker = Worker(
        dsn, ["t"], lambda job: handled.set(), poll_interval=120 if listen else 0.2, listen=listen
    )
    with running(worker):
        while not worker_is_idle(db):
            threading.Event().wait(0.05)
        Queue(db).add_queue_job(None, "t", {})
        assert handled.wait(timeout=30)
    assert worker.stats.completed == 1


def wait_for_heartbeat_after(conn: Conn, job: ClaimedJob, after: datetime | None) -> datetime:
    """Synchronisation, not a timing assertion: the next heartbeat later than ``after``."""
    for _ in range(600):
        row = conn.execute(
            "SELECT heartbeat_at FROM notify.queue_jobs WHERE id = %s", (job.id,)
        ).fetchone()
        if row and row[0] is not None and (after is None or row[0] > after):
            return row[0]  # type: ignore[no-any-return]
        threading.Event().wait(0.05)
    raise AssertionError("no heartbeat while the job ran")


def test_worker_heartbeats_jobs_in_hand_and_survives_losing_that_connection(
    dsn: str, db: Conn
) -> None:
    Queue(db).add_queue_job(None, "slow", {})

    def handler(job: ClaimedJob) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            first = wait_for_heartbeat_after(conn, job, None)
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE %s AND pid <> pg_backend_pid()",
                ("%heartbeat_queue_job%",),
            )
            wait_for_heartbeat_after(conn, job, first)

    worker = Worker(dsn, ["slow"], handler, heartbeat_interval=0.1, poll_interval=0.2)
    with running(worker):
        while worker.stats.completed + worker.stats.failed == 0:
            threading.Event().wait(0.05)
    assert (worker.stats.completed, worker.stats.failed) == (1, 0)


def _run_until_sigterm(dsn: str, started: Any, proceed: Any, results: Any) -> None:
    def handler(job: ClaimedJob) -> None:
        started.set()
        proceed.wait(30)

    stats: WorkerStats = Worker(dsn, ["t"], handler, batch_size=3).run()
    results.put((stats.completed, stats.released))


def test_sigterm_finishes_the_job_in_hand_and_releases_the_rest(dsn: str, db: Conn) -> None:
    Queue(db).add_queue_jobs([new_job("t") for _ in range(3)])
    context = multiprocessing.get_context("fork")
    started, proceed, results = context.Event(), context.Event(), context.Queue()
    process = context.Process(target=_run_until_sigterm, args=(dsn, started, proceed, results))
    process.start()
    assert started.wait(30)
    assert process.pid is not None
    os.kill(process.pid, signal.SIGTERM)
    proceed.set()
    process.join(30)
    assert process.exitcode == 0
    assert results.get(timeout=5) == (1, 2)
    rows = db.execute(
        "SELECT status, attempts, processing_token IS NULL FROM notify.queue_jobs ORDER BY status"
    ).fetchall()
    # attempts counts failed attempts: the completed job has none, the released ones ran not
    assert rows == [("completed", 0, False), ("pending", 0, True), ("pending", 0, True)]
