"""Two worker faults a chaos run found: outcomes lost with the connection (jobs re-run
although their tokens were still valid), and false "no longer ours" heartbeat warnings
for jobs the worker had just completed itself."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from notify_sql.worker import ClaimedJob, Handler, Worker
from notify_sql.wrappers import Queue
from tests.helpers.queue import new_job
from tests.helpers.reliability import install_completion_log, wait_until

Conn = psycopg.Connection[Any]
APPLICATION = "fault-worker"
TAKEN_AWAY = "no longer ours"


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def worker_log() -> Iterator[Captured]:
    captured = Captured()
    logger = logging.getLogger("notify_sql.worker")
    logger.addHandler(captured)
    try:
        yield captured
    finally:
        logger.removeHandler(captured)


@contextmanager
def running(worker: Worker) -> Iterator[list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            worker.run(install_signal_handler=False)
        except BaseException as error:  # reported to the test
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield errors
    finally:
        worker.stop()
        thread.join(timeout=60)
        assert not thread.is_alive()


def polling_worker(dsn: str, handler: Handler, **options: Any) -> Worker:
    """A worker that polls (no LISTEN) and does no upkeep: only what a test looks at."""
    return Worker(
        dsn, ["t"], handler, listen=False, maintenance=False, poll_interval=0.1, **options
    )


def run_until(worker: Worker, event: threading.Event, timeout: float) -> None:
    with running(worker) as errors:
        assert event.wait(timeout)
    assert errors == []


def counts(db: Conn, query: str) -> dict[Any, Any]:
    return dict(db.execute(query).fetchall())


def test_outcomes_are_recorded_on_a_fresh_connection_when_the_connection_drops(
    dsn: str, db: Conn
) -> None:
    install_completion_log(db)
    Queue(db).add_queue_jobs([new_job("t", {"n": n}) for n in range(5)])
    handled = 0

    def handler(job: ClaimedJob) -> None:
        nonlocal handled
        handled += 1
        if handled == 5:  # every handler of the batch ran; nothing is recorded yet
            db.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND query LIKE %s",
                (APPLICATION, "%claim_pending_jobs%"),
            )

    worker = polling_worker(make_conninfo(dsn, application_name=APPLICATION), handler, batch_size=5)
    with running(worker) as errors:
        wait_until(lambda: worker.stats.completed == 5 or bool(errors), 30, "the batch")
    assert errors == []
    assert counts(db, "SELECT status, count(*) FROM notify.queue_jobs GROUP BY 1") == {
        "completed": 5
    }
    # Each job ran once and was completed once: no stall reset, no second attempt
    # (attempts counts the earlier, failed or stalled, attempts: none).
    assert counts(db, "SELECT attempts, count(*) FROM notify.queue_jobs GROUP BY 1") == {0: 5}
    assert counts(db, "SELECT job_id, count(*) FROM public.reliability_completions GROUP BY 1") == {
        job_id: 1 for (job_id,) in db.execute("SELECT id FROM notify.queue_jobs").fetchall()
    }


def test_no_taken_away_warning_for_jobs_the_worker_completed(
    dsn: str, db: Conn, worker_log: Captured
) -> None:
    Queue(db).add_queue_jobs([new_job("t") for _ in range(1000)])
    done = threading.Event()
    handled = 0

    def handler(job: ClaimedJob) -> None:
        nonlocal handled
        threading.Event().wait(0.0005)  # long enough for beats to land mid-batch
        handled += 1
        if handled == 1000:
            done.set()

    worker = polling_worker(dsn, handler, heartbeat_interval=0.001)
    run_until(worker, done, 120)
    assert worker.stats.completed == 1000
    assert [m for m in worker_log.messages if TAKEN_AWAY in m] == []


def test_a_job_really_taken_away_is_reported(dsn: str, db: Conn, worker_log: Captured) -> None:
    job_id = Queue(db).add_queue_job(None, "t", {})
    warned = threading.Event()

    def handler(job: ClaimedJob) -> None:
        Queue(db).cancel_job_with_reason(job.id, "operator", allow_processing=True)
        wait_until(lambda: any(TAKEN_AWAY in m for m in worker_log.messages), 30, "a warning")
        warned.set()

    worker = polling_worker(dsn, handler, heartbeat_interval=0.01)
    run_until(worker, warned, 60)
    assert [m for m in worker_log.messages if TAKEN_AWAY in m] == [
        f"job {job_id} is no longer ours (reset or cancelled)"
    ]
    assert worker.stats.fenced == 1
