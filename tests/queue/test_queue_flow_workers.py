"""Flow control across worker PROCESSES claiming at once (issue 16, proof).

Four processes claim and complete one shared queue for a few seconds; every limit is
then checked from what the database recorded, the jobs' own started_at and
completed_at (never from the workers' clocks):

* the rate-limited key started at most burst + rate x T jobs in every window of T
  seconds between two of its starts;
* the capped key never had more than max_concurrent jobs processing at once;
* unkeyed jobs, an unlimited key's backlog, and a small key enqueued after it all
  finished beside the throttled key, and the small key did not wait for the backlog;
* a key paused at the start resumed and finished once its pause ended.
"""

from __future__ import annotations

import multiprocessing
import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[Any]
WORKERS = 4
RUN_SECONDS = 4.0
RATE, BURST = Decimal(8), 3
CAP, CAPPED_JOB_SECONDS = 2, 0.05
PAUSE_SECONDS = Decimal(1)


def _work(dsn: str, deadline: float) -> None:
    """One worker process: claim up to 5, run each (sleeping metadata.sleep), complete."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET ROLE service_role")
        while time.monotonic() < deadline:
            jobs = conn.execute(
                "SELECT id, processing_token, metadata FROM notify.claim_pending_jobs('{t}', 5)"
            ).fetchall()
            for job_id, token, metadata in jobs:
                time.sleep(metadata.get("sleep", 0))
                conn.execute("SELECT notify.complete_queue_job(%s, NULL, %s)", (job_id, token))
            if not jobs:
                time.sleep(0.01)


def _enqueue(db: Conn, key: str | None, count: int, sleep: float = 0) -> None:
    jobs = [{"job_type": "t", "limit_key": key, "metadata": {"sleep": sleep}}] * count
    db.execute("SELECT notify.add_queue_jobs(%s)", (Jsonb(jobs),))


def _starts(db: Conn, key: str | None) -> list[datetime]:
    rows = db.execute(
        "SELECT started_at FROM notify.queue_jobs WHERE limit_key IS NOT DISTINCT FROM %s "
        "AND started_at IS NOT NULL ORDER BY started_at",
        (key,),
    ).fetchall()
    return [row[0] for row in rows]


def _max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in events:  # at equal times the end (-1) sorts first
        running += step
        peak = max(peak, running)
    return peak


def test_limits_hold_across_worker_processes(dsn: str, db: Conn) -> None:
    db.execute("SELECT notify.set_queue_limit('slow', %s, NULL, %s)", (RATE, BURST))
    db.execute("SELECT notify.set_queue_limit('capped', NULL, %s)", (CAP,))
    _enqueue(db, "slow", 200)
    _enqueue(db, "capped", 20, sleep=CAPPED_JOB_SECONDS)
    _enqueue(db, "big", 400)
    _enqueue(db, None, 60)
    _enqueue(db, "paused", 5)
    _enqueue(db, "small", 10)  # after everything else
    db.execute("SELECT notify.pause_queue_limit('paused', %s)", (PAUSE_SECONDS,))

    context = multiprocessing.get_context("fork")
    deadline = time.monotonic() + RUN_SECONDS
    processes = [context.Process(target=_work, args=(dsn, deadline)) for _ in range(WORKERS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(RUN_SECONDS + 30)
        assert process.exitcode == 0

    # Rate: every window between two starts of the key.
    slow = _starts(db, "slow")
    assert len(slow) >= BURST
    for i, first in enumerate(slow):
        for j in range(i, len(slow)):
            seconds = Decimal((slow[j] - first).total_seconds())
            assert j - i + 1 <= BURST + RATE * seconds, (i, j, seconds)
    assert len(slow) < 200, "the throttled key must still have a backlog"

    # Concurrency: intervals of the capped key's jobs, from the database's timestamps.
    capped = db.execute(
        "SELECT started_at, completed_at FROM notify.queue_jobs WHERE limit_key = 'capped'"
    ).fetchall()
    assert all(end is not None for _, end in capped), "capped jobs left unfinished"
    assert _max_overlap(capped) <= CAP
    assert _max_overlap(capped) == CAP  # and the cap was used, not just respected

    # Everything else finished beside the throttled key.
    rows = db.execute(
        "SELECT coalesce(limit_key, '-'), count(*) FILTER (WHERE status <> 'completed') "
        "FROM notify.queue_jobs WHERE limit_key IS DISTINCT FROM 'slow' GROUP BY 1"
    ).fetchall()
    assert dict(rows) == {"-": 0, "big": 0, "capped": 0, "paused": 0, "small": 0}

    # The small key, enqueued last, did not wait for the big key's backlog.
    small_done = _starts(db, "small")[-1]
    big_before = sum(1 for start in _starts(db, "big") if start <= small_done)
    assert big_before < 200, big_before

    # The paused key waited out its pause, then resumed.
    paused_first = _starts(db, "paused")[0]
    created = db.execute(
        "SELECT min(updated_at) FROM notify.queue_limits WHERE limit_key = 'paused'"
    ).fetchone()
    assert created is not None
    assert paused_first >= created[0] + timedelta(seconds=float(PAUSE_SECONDS))
