"""The queue under real concurrency: separate processes and connections, no mocks."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from uuid import UUID

import psycopg

from notify_sql.wrappers import Queue
from tests.helpers.queue import new_job

Conn = psycopg.Connection[Any]
T = TypeVar("T")
JOBS = 10_000
WORKERS = 8


def service_queue(dsn: str) -> tuple[Conn, Queue]:
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute("SET ROLE service_role")
    return conn, Queue(conn)


def drain(dsn: str, batch_size: int) -> list[tuple[str, bool]]:
    """One worker process: claim until nothing is left, completing job by job."""
    conn, queue = service_queue(dsn)
    outcomes = []
    with conn:
        while jobs := queue.claim_pending_jobs(["drain"], batch_size=batch_size):
            outcomes += [
                (
                    str(j.id),
                    bool(queue.complete_queue_job(j.id, processing_token=j.processing_token)),
                )
                for j in jobs
            ]
    return outcomes


def test_eight_processes_drain_ten_thousand_jobs_exactly_once(dsn: str, db: Conn) -> None:
    queue = Queue(db)
    for _ in range(JOBS // 1000):
        queue.add_queue_jobs([new_job("drain") for _ in range(1000)])
    context = multiprocessing.get_context("fork")
    with context.Pool(WORKERS) as pool:
        results = pool.starmap(drain, [(dsn, 1 + worker % 4 * 10) for worker in range(WORKERS)])
    outcomes = [outcome for result in results for outcome in result]
    assert all(completed for _, completed in outcomes)
    per_job = Counter(job_id for job_id, _ in outcomes)
    assert len(per_job) == JOBS and set(per_job.values()) == {1}
    assert sum(1 for result in results if result) > 1  # the work really was shared
    statuses = db.execute("SELECT status, count(*) FROM notify.queue_jobs GROUP BY 1").fetchall()
    assert statuses == [("completed", JOBS)]


def concurrently(count: int, dsn: str, call: Callable[[Queue], T]) -> list[T]:
    """Runs ``call`` from ``count`` threads, each on its own connection, released together."""
    start = threading.Barrier(count)

    def one(_: int) -> T:
        conn, queue = service_queue(dsn)
        with conn:
            start.wait()
            return call(queue)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_twenty_concurrent_adds_with_one_key_return_one_id(dsn: str, db: Conn) -> None:
    ids = concurrently(
        20, dsn, lambda q: q.add_queue_job(None, "brief", {}, dedup_key="user-1:2025-10-10")
    )
    assert len(set(ids)) == 1
    assert db.execute("SELECT count(*) FROM notify.queue_jobs").fetchone() == (1,)


def test_concurrent_bulk_adds_agree_on_every_key_without_deadlock(dsn: str, db: Conn) -> None:
    keys = [f"k{n % 500}" for n in range(1000)]
    turn = iter(range(6))

    def add(queue: Queue) -> dict[str, UUID]:
        # Half the batches list the keys in the opposite order: without a canonical
        # insert order, two such batches meet in the middle and deadlock on each
        # other's uncommitted rows.
        ordered = keys if next(turn) % 2 else keys[::-1]
        ids = queue.add_queue_jobs([new_job("t", dedup_key=key) for key in ordered]) or []
        assert all(ids[i] == ids[ordered.index(key)] for i, key in enumerate(ordered))
        return dict(zip(ordered, ids, strict=True))

    results = concurrently(6, dsn, add)
    assert all(result == results[0] for result in results)
    assert db.execute("SELECT count(*) FROM notify.queue_jobs").fetchone() == (500,)


def wait_for_lock_waiters(db: Conn, count: int) -> None:
    """Synchronisation, not a timing assertion: blocks until ``count`` sessions wait."""
    for _ in range(500):
        row = db.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        ).fetchone()
        if row and row[0] >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"{count} sessions never blocked")


def race_with_uncommitted_insert(
    dsn: str, db: Conn, commit: bool
) -> tuple[UUID | None, list[UUID | None]]:
    """Adds key k in an open transaction, starts 5 more adds (which must wait on it),
    then commits or rolls back the first one."""
    with psycopg.connect(dsn) as holder:
        holder.execute("SET ROLE service_role")
        first = Queue(holder).add_queue_job(None, "t", {}, dedup_key="k")
        with ThreadPoolExecutor(5) as pool:

            def add(_: int) -> UUID | None:
                conn, queue = service_queue(dsn)
                with conn:
                    return queue.add_queue_job(None, "t", {}, dedup_key="k")

            futures = [pool.submit(add, n) for n in range(5)]
            wait_for_lock_waiters(db, 5)
            if commit:
                holder.commit()
            else:
                holder.rollback()
            return first, [future.result() for future in futures]


def test_adds_racing_an_uncommitted_insert_return_its_id(dsn: str, db: Conn) -> None:
    first, others = race_with_uncommitted_insert(dsn, db, commit=True)
    assert set(others) == {first}


def test_adds_racing_an_aborted_insert_agree_on_a_new_id(dsn: str, db: Conn) -> None:
    first, others = race_with_uncommitted_insert(dsn, db, commit=False)
    assert len(set(others)) == 1 and others[0] != first
    assert db.execute("SELECT count(*) FROM notify.queue_jobs").fetchone() == (1,)
