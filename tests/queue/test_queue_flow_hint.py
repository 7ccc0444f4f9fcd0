"""The claim's "no keyed job can start before T" hint (issue 16: no head-of-line cost).

A claim whose keyed walk started nothing records the hint in its session, and the
following claims take the unkeyed path alone. These tests pin down that the hint is
never trusted past a change that lets a keyed job start sooner: each one sets a hint
in one worker session, makes the change from another session, and checks that the
worker's very next claim sees it. Each fails if the change does not void the hint
(remove its bump in add_queue_job(s), or a trigger of migration 0012, to see it).
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from tests.queue.test_queue_flow import SLOW, add, add_many, claim_keys, set_limit
from tests.queue.test_queue_flow_workers import _enqueue, _max_overlap, _starts, _work

Conn = psycopg.Connection[Any]


@pytest.fixture
def worker(dsn: str) -> Iterator[Conn]:
    """A second service_role session: the claiming worker, whose hint we watch."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET ROLE service_role")
        yield conn


def hint_until(conn: Conn) -> datetime | None:
    row = conn.execute(
        "SELECT nullif(current_setting('notify_sql.keyed_until_notify', true), '')"
    ).fetchone()
    assert row is not None
    if row[0] is None:
        return None
    return (
        datetime.max.replace(tzinfo=UTC)
        if row[0] == "Infinity"
        else (datetime.fromtimestamp(float(row[0]), UTC))
    )


def throttle(conn: Conn, key: str) -> None:
    """`key` with two due jobs and an empty bucket that refills in about 11 days."""
    set_limit(conn, key, p_max_per_second=SLOW, p_burst=1)
    add_many(conn, key, 2)
    conn.execute("UPDATE notify.queue_limits SET tokens = 0 WHERE limit_key = %s", (key,))


def test_a_walk_that_starts_nothing_records_until_when(service_db: Conn, worker: Conn) -> None:
    throttle(service_db, "held")
    add_many(service_db, None, 3)
    assert claim_keys(worker, 10) == [None] * 3
    until = hint_until(worker)
    row = service_db.execute(
        "SELECT refilled_at + make_interval(secs => 1 / max_per_second::double precision) "
        "FROM notify.queue_limits WHERE limit_key = 'held'"
    ).fetchone()
    assert row is not None and until is not None
    assert abs((until - row[0]).total_seconds()) < 0.001  # the bucket's next token
    add_many(service_db, None, 2)
    assert claim_keys(worker, 10) == [None] * 2  # the unkeyed path, hint kept
    assert hint_until(worker) == until


@pytest.mark.parametrize("bulk", [False, True])
def test_a_new_keyed_job_voids_the_hint(service_db: Conn, worker: Conn, bulk: bool) -> None:
    throttle(service_db, "held")
    assert claim_keys(worker, 10) == []
    assert hint_until(worker) is not None
    if bulk:
        add_many(service_db, "free", 1)
    else:
        add(service_db, "free")
    assert claim_keys(worker, 10) == ["free"]


@pytest.mark.parametrize("bulk", [False, True])
def test_a_keyed_job_committed_after_the_check_voids_the_hint(
    service_db: Conn, worker: Conn, dsn: str, bulk: bool
) -> None:
    """The generation is a sequence (0013): its nextval is visible before the job it
    announces commits. A walk that runs while that job is uncommitted reads the moved
    generation and misses the job; the generation's gate keeps it from recording a hint."""
    throttle(service_db, "held")
    with psycopg.connect(dsn) as enqueuer:  # one open transaction
        enqueuer.execute("SET ROLE service_role")
        if bulk:
            add_many(enqueuer, "free", 1)
        else:
            add(enqueuer, "free")
        assert claim_keys(worker, 10) == []  # the job is not visible yet
        assert hint_until(worker) is None  # a bump was in flight: no hint
        enqueuer.commit()
    assert claim_keys(worker, 10) == ["free"]


def test_a_freed_cap_slot_voids_the_hint(service_db: Conn, worker: Conn, dsn: str) -> None:
    set_limit(service_db, "capped", p_max_concurrent=1)
    add_many(service_db, "capped", 2)
    first = service_db.execute(
        "SELECT id, processing_token FROM notify.claim_pending_jobs('{t}', 10)"
    ).fetchall()
    assert len(first) == 1
    assert claim_keys(worker, 10) == []
    assert hint_until(worker) == datetime.max.replace(tzinfo=UTC)  # no clock frees a slot
    assert service_db.execute("SELECT notify.next_limited_start()").fetchone() == (None,)
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute('LISTEN "notify.queue_jobs"')
        listener.execute("SELECT * FROM notify.claim_pending_jobs('{nothing}', 1)")  # idle
        service_db.execute("SELECT notify.complete_queue_job(%s, NULL, %s)", first[0])
        woken = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
    assert woken == ["t"]
    assert claim_keys(worker, 10) == ["capped"]


def test_a_released_keyed_job_voids_the_hint(service_db: Conn, worker: Conn) -> None:
    add_many(service_db, "free", 1)
    job = service_db.execute(
        "SELECT id, processing_token FROM notify.claim_pending_jobs('{t}', 10)"
    ).fetchall()
    throttle(service_db, "held")
    assert claim_keys(worker, 10) == []
    assert hint_until(worker) is not None
    service_db.execute("SELECT notify.release_queue_jobs(%s, %s)", ([job[0][0]], [job[0][1]]))
    assert claim_keys(worker, 10) == ["free"]


@pytest.mark.parametrize(
    "relax",
    [
        "SELECT notify.set_queue_limit('held', 1000)",
        "SELECT notify.set_queue_limit('held')",
        "UPDATE notify.queue_limits SET paused_until = NULL WHERE limit_key = 'held'",
        "TRUNCATE notify.queue_limits",
    ],
)
def test_a_relaxed_limit_voids_the_hint(
    service_db: Conn, db: Conn, worker: Conn, relax: str
) -> None:
    throttle(service_db, "held")
    service_db.execute("UPDATE notify.queue_limits SET tokens = 1 WHERE limit_key = 'held'")
    service_db.execute("SELECT notify.pause_queue_limit('held', 3600)")
    assert claim_keys(worker, 10) == []
    assert hint_until(worker) is not None
    db.execute(relax)
    assert set(claim_keys(worker, 10)) == {"held"}


def test_a_held_back_job_is_claimed_by_the_first_claim_after_its_token(
    service_db: Conn, worker: Conn
) -> None:
    set_limit(service_db, "k", p_max_per_second=0.5, p_burst=1)
    add_many(service_db, "k", 2)
    assert claim_keys(worker, 10) == ["k"]
    assert claim_keys(worker, 10) == []  # the bucket is empty: a hint until the token
    until = hint_until(worker)
    assert until is not None and until > datetime.now(UTC)
    time.sleep(max((until - datetime.now(UTC)).total_seconds(), 0) + 0.01)
    assert claim_keys(worker, 10) == ["k"]  # the first claim after it, no extra wait


def test_worker_processes_keep_limits_and_take_late_keyed_jobs(dsn: str, db: Conn) -> None:
    """Four worker processes, every one of them holding hints most of the time: the
    limits still hold in every window, and keyed jobs enqueued while they run (of an
    unlimited key, while the other keys are held back, one by a cap with no clock to
    wait for) are all taken."""
    rate, seconds = Decimal("0.2"), 3.0  # 'slow': one start, then its hint outlasts the run
    db.execute("SELECT notify.set_queue_limit('slow', %s, NULL, 1)", (rate,))
    db.execute("SELECT notify.set_queue_limit('capped', NULL, 1)")
    _enqueue(db, "slow", 100)
    _enqueue(db, "capped", 8, sleep=0.1)
    _enqueue(db, None, 40)
    context = multiprocessing.get_context("fork")
    deadline = time.monotonic() + seconds
    processes = [context.Process(target=_work, args=(dsn, deadline)) for _ in range(4)]
    for process in processes:
        process.start()
    late = 0
    while time.monotonic() < deadline - 0.8:
        add(db, "late")
        late += 1
        time.sleep(0.2)
    for process in processes:
        process.join(seconds + 30)
        assert process.exitcode == 0

    slow = _starts(db, "slow")
    for i, first in enumerate(slow):
        for j in range(i, len(slow)):
            assert j - i + 1 <= 1 + rate * Decimal((slow[j] - first).total_seconds()), (i, j)
    capped = db.execute(
        "SELECT started_at, completed_at FROM notify.queue_jobs WHERE limit_key = 'capped'"
    ).fetchall()
    assert _max_overlap([(start, end) for start, end in capped if start is not None]) == 1
    rows = db.execute(
        "SELECT coalesce(limit_key, '-'), count(*) FILTER (WHERE status <> 'completed') "
        "FROM notify.queue_jobs WHERE limit_key IS DISTINCT FROM 'slow' GROUP BY 1"
    ).fetchall()
    assert dict(rows) == {"-": 0, "capped": 0, "late": 0}
    assert late >= 5


def test_next_limited_start_leaves_out_a_key_whose_cap_is_full(service_db: Conn) -> None:
    """An empty bucket names no time while the key's cap is full: a token then starts
    nothing. Once the running job ends, the refill time counts again."""
    set_limit(service_db, "k", p_max_per_second=SLOW, p_burst=1, p_max_concurrent=1)
    add_many(service_db, "k", 2)
    job = service_db.execute(
        "SELECT id, processing_token FROM notify.claim_pending_jobs('{t}', 10)"
    ).fetchall()
    assert len(job) == 1
    assert service_db.execute("SELECT notify.next_limited_start()").fetchone() == (None,)
    service_db.execute("SELECT notify.complete_queue_job(%s, NULL, %s)", job[0])
    row = service_db.execute("SELECT notify.next_limited_start() > now()").fetchone()
    assert row == (True,)


def test_a_hint_serves_every_session(service_db: Conn, worker: Conn, dsn: str) -> None:
    """One session's check is shared (queue_keyed_hints): a new session's first claim
    takes the hint instead of walking the keys, until the generation moves."""
    throttle(service_db, "held")
    assert claim_keys(worker, 10) == []
    until = hint_until(worker)
    assert until is not None
    add_many(service_db, None, 1)  # an unkeyed job announces nothing
    with psycopg.connect(dsn, autocommit=True) as other:
        other.execute("SET ROLE service_role")
        assert claim_keys(other, 10) == [None]
        assert hint_until(other) == until
        add(service_db, "free")
        assert claim_keys(other, 10) == ["free"]
