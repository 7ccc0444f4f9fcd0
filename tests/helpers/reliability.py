"""Shared helpers for the fault-injection tests (no tests of its own).

The promise under test, the one the most trusted Postgres queues make: a job is never
lost once enqueued, never completed twice, and always reaches a final state.

Completions are counted by the database itself, independently of any worker code: a
test-only trigger appends a row to ``public.reliability_completions`` in the same
transaction as every transition of a job into ``completed``. A job completed twice
would need two committed transitions, so two rows; a completion that was rolled back
(or never committed because the worker or the server died) leaves none.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg.conninfo import make_conninfo

from notify_sql.migrator import record_catalog_sql
from notify_sql.worker import ClaimedJob, JsonObject, Worker
from notify_sql.wrappers import Queue
from tests.helpers.queue import new_job

Conn = psycopg.Connection[Any]

JOB_TYPE = "reliability"
WORKER_APPLICATION = "reliability-worker"
# Jobs the handler always fails; max_attempts 1 makes that final at the first failure
# (otherwise the retry backoff, 5 s and more, would outlast the test).
POISON = {"poison": True}

COMPLETION_LOG = """
CREATE TABLE public.reliability_completions (
  job_id uuid NOT NULL,
  completed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION public.reliability_log_completion() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
  INSERT INTO public.reliability_completions (job_id) VALUES (NEW.id);
  RETURN NULL;
END;
$$;
CREATE TRIGGER reliability_log_completion
  AFTER UPDATE OF status ON notify.queue_jobs
  FOR EACH ROW WHEN (NEW.status = 'completed' AND OLD.status IS DISTINCT FROM 'completed')
  EXECUTE FUNCTION public.reliability_log_completion();
"""


def install_completion_log(conn: Conn) -> None:
    """Adds the completion-counting trigger (test databases only; needs a superuser).

    A trigger added to an install table is drift `migrate` refuses, so the catalog
    snapshot is recorded again with it: the instrumentation is declared, not drift."""
    with conn.transaction():
        conn.execute(COMPLETION_LOG)
        conn.execute(record_catalog_sql("notify"))


def worker_dsn(dsn: str) -> str:
    """The DSN workers use: acting as service_role (proving the grants) and tagged so
    the tests can find their backends to terminate them."""
    return make_conninfo(dsn, options="-c role=service_role", application_name=WORKER_APPLICATION)


def enqueue(conn: Conn, count: int, poison_every: int = 0) -> list[UUID]:
    """Enqueues ``count`` jobs (every ``poison_every``-th a poison job) in bulk."""
    jobs = [
        new_job(JOB_TYPE, POISON, max_attempts=1)
        if poison_every and n % poison_every == 0
        else new_job(JOB_TYPE, {"n": n})
        for n in range(count)
    ]
    queue = Queue(conn)
    return [
        job_id
        for start in range(0, count, 500)
        for job_id in queue.add_queue_jobs(jobs[start : start + 500]) or []
    ]


def handle(job: ClaimedJob) -> JsonObject:
    """A job's work: a short random pause (so faults land mid-batch), poison jobs raise."""
    time.sleep(random.uniform(0.001, 0.01))
    if job.metadata.get("poison"):
        raise RuntimeError("poison job")
    return {"worked": True}


def make_worker(dsn: str, batch_size: int = 5) -> Worker:
    return Worker(
        worker_dsn(dsn),
        [JOB_TYPE],
        handle,
        batch_size=batch_size,
        poll_interval=0.05,
        heartbeat_interval=0.2,
        listen=False,
    )


def live_jobs(conn: Conn) -> int:
    row = conn.execute(
        "SELECT count(*) FROM notify.queue_jobs WHERE status IN ('pending', 'processing')"
    ).fetchone()
    assert row is not None
    return int(row[0])


def terminate_workers(conn: Conn) -> int:
    """Terminates every worker backend (what a crashed host or a DBA's kill does)."""
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = %s",
        (WORKER_APPLICATION,),
    ).fetchone()
    assert row is not None
    return int(row[0])


@dataclass
class ResilientWorker:
    """A Worker in a thread that reconnects after losing its connection (the way a
    supervisor restarts a worker process), recording every error it saw."""

    dsn: str
    errors: list[psycopg.Error] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _current: Worker | None = None
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._current = make_worker(self.dsn)
            try:
                self._current.run(install_signal_handler=False)
            except psycopg.Error as error:
                self.errors.append(error)
                self._stopping.wait(0.1)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="resilient-worker")
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._current is not None:
            self._current.stop()
        assert self._thread is not None
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "worker did not stop"


@contextmanager
def resilient_workers(dsn: str, count: int) -> Iterator[list[ResilientWorker]]:
    workers = [ResilientWorker(dsn) for _ in range(count)]
    for worker in workers:
        worker.start()
    try:
        yield workers
    finally:
        for worker in workers:
            worker.stop()


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def recover_and_drain(dsn: str, conn: Conn, timeout: float = 60) -> None:
    """What an operator does after a crash: rescue every job left `processing` by a dead
    worker, then let a healthy worker finish the queue."""
    time.sleep(0.01)  # every claim so far is now older than the stall timeout below
    Queue(conn).reset_stalled_jobs(stall_timeout=timedelta(milliseconds=1), batch_size=100000)
    with resilient_workers(dsn, 1):
        wait_until(lambda: live_jobs(conn) == 0, timeout, "the drain to finish")


def assert_every_job_final_exactly_once(conn: Conn, enqueued: list[UUID]) -> dict[str, int]:
    """The three invariants; returns the count of jobs per final status."""
    rows = conn.execute(
        """
        SELECT j.id, j.status, j.attempts, j.max_attempts, j.metadata, j.error_message,
               (SELECT count(*) FROM public.reliability_completions c WHERE c.job_id = j.id)
        FROM notify.queue_jobs j
        """
    ).fetchall()
    by_id = {row[0]: row for row in rows}
    lost = set(enqueued) - set(by_id)
    assert not lost, f"{len(lost)} enqueued jobs are gone, e.g. {sorted(lost)[:3]}"
    twice = [row[0] for row in rows if row[6] > 1]
    assert not twice, f"jobs completed more than once: {twice[:5]}"
    counts: dict[str, int] = {}
    for job_id, status, attempts, max_attempts, metadata, error, completions in rows:
        counts[status] = counts.get(status, 0) + 1
        assert status in ("completed", "failed"), f"job {job_id} ended {status}"
        assert completions == (1 if status == "completed" else 0), f"job {job_id}: {status}"
        if status == "failed":
            # Failed only by policy: a poison job, or one whose every attempt stalled.
            assert metadata.get("poison") or (
                attempts >= max_attempts and error.startswith("stalled")
            ), f"job {job_id} failed outside the policy: {error!r}"
        else:
            assert not metadata.get("poison"), f"poison job {job_id} completed"
    return counts


# Exit status of a worker process whose connection was terminated under it.
CONNECTION_LOST = 3


def worker_process(dsn: str) -> None:
    """Entry point of a worker process (spawned, so it shares nothing with the test)."""
    try:
        make_worker(dsn).run()
    except psycopg.OperationalError as error:
        raise SystemExit(CONNECTION_LOST) from error
