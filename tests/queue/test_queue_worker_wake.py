"""The worker claims a job held back by its limit key as soon as the limit allows it.

Nothing announces the moment a rate-limited key gets its next token or a pause ends
(no row changes then, so no NOTIFY): the worker must learn it from
``next_limited_start()`` before it waits. Here the poll interval is 30 s and every
bound is far below it, so a worker that only waits for a NOTIFY or the poll fails
these tests after a few seconds, instead of passing late. Times come from the jobs'
started_at (the server's clock), never from the test's.
"""

from __future__ import annotations

import time
from datetime import datetime
from decimal import Decimal
from itertools import pairwise
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

from notify_sql.rpc import wake_channel
from notify_sql.worker import MIN_PAUSE, Worker
from tests.helpers.reliability import wait_until
from tests.queue.test_queue_worker import running

Conn = psycopg.Connection[Any]
POLL = 30.0  # what a worker that ignores next_limited_start would wait
BOUND = 10.0  # seconds for everything: a third of the poll, several times what is needed
EPSILON = 0.005  # started_at is stamped under the key's lock with clock_timestamp()


def _enqueue(db: Conn, key: str, count: int) -> None:
    jobs = [{"job_type": "t", "limit_key": key}] * count
    db.execute("SELECT notify.add_queue_jobs(%s)", (Jsonb(jobs),))


def _starts(db: Conn) -> list[datetime]:
    rows = db.execute(
        "SELECT started_at FROM notify.queue_jobs WHERE status = 'completed' ORDER BY started_at"
    ).fetchall()
    return [row[0] for row in rows]


def _drain(dsn: str, db: Conn, count: int, *, listen: bool) -> None:
    """Runs one worker until ``count`` jobs are completed, at most BOUND seconds."""
    worker = Worker(dsn, ["t"], lambda job: None, poll_interval=POLL, listen=listen)
    with running(worker):
        wait_until(lambda: len(_starts(db)) == count, BOUND, f"{count} jobs to complete")


@pytest.mark.parametrize("listen", [True, False], ids=["listen", "poll-only"])
def test_a_rate_limited_key_is_claimed_at_each_new_token(dsn: str, db: Conn, listen: bool) -> None:
    """2 per second, burst 1: one job at once, then one every half second."""
    db.execute("SELECT notify.set_queue_limit('k', %s, NULL, 1)", (Decimal(2),))
    _enqueue(db, "k", 5)
    _drain(dsn, db, 5, listen=listen)
    starts = _starts(db)
    gaps = [(later - earlier).total_seconds() for earlier, later in pairwise(starts)]
    # The limit held (never two starts within 1/rate), and each job was claimed at its
    # token, not at the next poll (5x the token interval is a generous wake-up bound).
    assert all(0.5 - EPSILON <= gap < 2.5 for gap in gaps), gaps


@pytest.mark.parametrize("listen", [True, False], ids=["listen", "poll-only"])
def test_a_paused_key_runs_when_its_pause_ends_without_a_notify(
    dsn: str, db: Conn, listen: bool
) -> None:
    _enqueue(db, "p", 3)
    row = db.execute("SELECT notify.pause_queue_limit('p', 2)").fetchone()
    assert row is not None
    paused_until: datetime = row[0]
    with psycopg.connect(dsn, autocommit=True) as spy:
        spy.execute(sql.SQL("LISTEN {}").format(sql.Identifier(wake_channel("notify"))))
        _drain(dsn, db, 3, listen=listen)
        announced = list(spy.notifies(timeout=0.1))
    assert announced == []  # nothing but the clock told the worker the pause was over
    starts = _starts(db)
    assert paused_until <= starts[0]
    assert (starts[-1] - paused_until).total_seconds() < 5, (starts, paused_until)


def test_a_worker_never_sleeps_past_the_poll_interval_for_a_later_start(dsn: str, db: Conn) -> None:
    """A key paused longer than the poll interval: the worker still polls on time (its
    other work is not held up by a far-off start)."""
    _enqueue(db, "p", 1)
    db.execute("SELECT notify.pause_queue_limit('p', 3600)")
    worker = Worker(dsn, ["t"], lambda job: None, poll_interval=0.2, listen=False)
    with running(worker):
        time.sleep(0.5)  # the worker has claimed nothing and waits
        db.execute("SELECT notify.add_queue_job(NULL, 't', '{}')")
        wait_until(lambda: len(_starts(db)) == 1, BOUND, "the unkeyed job")


def test_keys_of_other_job_types_never_make_an_idle_worker_claim_in_a_loop(
    dsn: str, db: Conn
) -> None:
    """next_limited_start() is not per job type. Here 800 keys (of other workers' job
    types) get a token 2 ms apart, as if other workers were draining them at 500 starts
    a second: a worker of type 'a' is woken by those moments and finds nothing. After
    such a wasted wake it waits at least MIN_PAUSE, so it asks at most once per
    MIN_PAUSE (without that floor, about once per 4 ms). Counted by the server
    (track_functions): an upper bound that load can only make easier to meet."""
    db.execute(sql.SQL("ALTER DATABASE {} SET track_functions = 'all'").format(
        sql.Identifier(db.info.dbname)))  # fmt: skip
    db.execute(
        "SELECT notify.set_queue_limit('b:' || k, 1, NULL, 1) FROM generate_series(1, 800) k"
    )
    # Bucket empty, refilled (at 1 per second) 0.2 s + k x 2 ms from now.
    db.execute(
        "UPDATE notify.queue_limits SET tokens = 0, refilled_at = clock_timestamp() "
        "- interval '0.8 s' + split_part(limit_key, ':', 2)::integer * interval '2 ms'"
    )
    worker = Worker(make_conninfo(dsn, application_name="wake-test"), ["a"], lambda job: None,
                    poll_interval=POLL)  # fmt: skip
    started = time.monotonic()
    with running(worker):
        time.sleep(1.5)
    elapsed = time.monotonic() - started
    # A backend's function counts reach the statistics when it exits.
    wait_until(lambda: not _backends(db, "wake-test"), BOUND, "the worker's sessions to end")
    row = db.execute(
        "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions "
        "WHERE schemaname = 'notify' AND funcname = 'next_limited_start'"
    ).fetchone()
    assert row is not None
    assert 10 <= row[0] <= 1.2 * elapsed / MIN_PAUSE + 5, (row[0], elapsed)


def _backends(db: Conn, application: str) -> int:
    row = db.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (application,)
    ).fetchone()
    return int(row[0]) if row else 0
