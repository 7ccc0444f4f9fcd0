"""The database server crashes (``pg_ctl stop -m immediate``) while jobs are enqueued and
drained, twice, and is restarted.

A dedicated throwaway server (the session's shared one must not crash under other
tests). An enqueuer adds jobs one by one and keeps the ids whose enqueue returned; four
resilient workers drain. After the restarts, recovery and a drain: every acknowledged
enqueue is present, nothing committed is lost, and every job is final exactly once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from functools import partial
from uuid import UUID

import psycopg
import pytest

from notify_sql.migrator import migrate
from notify_sql.throwaway import ThrowawayPostgres
from notify_sql.wrappers import Queue
from tests.helpers.reliability import (
    JOB_TYPE,
    assert_every_job_final_exactly_once,
    install_completion_log,
    recover_and_drain,
    resilient_workers,
    wait_until,
    worker_dsn,
)

JOBS = 1200
CRASHES = 2


@pytest.fixture
def crashable_server(pg_server: ThrowawayPostgres) -> Iterator[ThrowawayPostgres]:
    server = ThrowawayPostgres(bindir=pg_server.bindir)
    server.start()
    try:
        yield server
    finally:
        server.destroy()


class Enqueuer(threading.Thread):
    """Adds jobs one by one, reconnecting whenever the server goes away; ``acknowledged``
    holds the ids of the enqueues that returned (an enqueue cut off by the crash may or
    may not have committed: it is not counted, and either outcome is fine)."""

    def __init__(self, dsn: str, total: int) -> None:
        super().__init__(name="enqueuer")
        self.dsn = dsn
        self.total = total
        self.acknowledged: list[UUID] = []
        self.errors: list[psycopg.Error] = []

    def has_acknowledged(self, count: int) -> bool:
        return len(self.acknowledged) >= count

    def run(self) -> None:
        while len(self.acknowledged) < self.total:
            try:
                with psycopg.connect(self.dsn, autocommit=True) as conn:
                    queue = Queue(conn)
                    while len(self.acknowledged) < self.total:
                        job = queue.add_queue_job(None, JOB_TYPE, {"n": len(self.acknowledged)})
                        assert job is not None
                        self.acknowledged.append(job)
            except psycopg.OperationalError as error:
                self.errors.append(error)
                time.sleep(0.05)


def _is_connection_loss(error: psycopg.Error) -> bool:
    """Errors a crash may cause: the connection broke (no SQLSTATE, class 08) or the
    server announced its shutdown (class 57: admin / crash shutdown, cannot connect now)."""
    return error.sqlstate is None or error.sqlstate[:2] in ("08", "57")


def test_server_crash_loses_no_committed_job(crashable_server: ThrowawayPostgres) -> None:
    dsn = crashable_server.dsn()
    migrate(dsn)
    with psycopg.connect(dsn, autocommit=True) as admin:
        install_completion_log(admin)
    enqueuer = Enqueuer(worker_dsn(dsn), JOBS)
    with resilient_workers(dsn, 4) as workers:
        enqueuer.start()
        for crash in range(1, CRASHES + 1):
            wait_until(
                partial(enqueuer.has_acknowledged, crash * JOBS // (CRASHES + 1)),
                60,
                "enqueues before the crash",
            )
            crashable_server.stop("immediate")
            time.sleep(0.3)
            crashable_server.start()
        enqueuer.join(timeout=60)
        assert not enqueuer.is_alive()
    with psycopg.connect(dsn, autocommit=True) as admin:
        recover_and_drain(dsn, admin)
        counts = assert_every_job_final_exactly_once(admin, enqueuer.acknowledged)
    assert counts == {"completed": counts["completed"]}
    assert counts["completed"] >= JOBS
    errors = [e for w in workers for e in w.errors] + enqueuer.errors
    assert errors, "the crashes went unnoticed: were they real?"
    unexpected = [e for e in errors if not _is_connection_loss(e)]
    assert not unexpected, f"errors other than connection loss: {unexpected[:3]}"
