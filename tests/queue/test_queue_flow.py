"""Flow control in the claim (issue 16): limit keys, token buckets, concurrency caps,
pauses, fair share between keys, and the idle-worker wake-up, one behaviour per test.

Called as service_role. Time is never waited for where it can be moved instead: a
pause ends by moving paused_until into the past, a bucket is emptied by a rate so low
that it does not refill during the test.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg.types.json import Jsonb

from notify_sql.rpc import wake_channel
from notify_sql.wrappers import Queue

Conn = psycopg.Connection[Any]
SLOW = 0.000001  # tokens per second: no refill within a test


def add(conn: Conn, key: str | None, job_type: str = "t", **extra: Any) -> UUID:
    names = "".join(f", {name} => %({name})s" for name in extra)
    row = conn.execute(
        "SELECT notify.add_queue_job(p_user_id => NULL, p_job_type => %(job_type)s, "
        f"p_metadata => %(metadata)s{names}, p_limit_key => %(key)s)",
        {"job_type": job_type, "metadata": Jsonb({}), "key": key, **extra},
    ).fetchone()
    assert row is not None
    return UUID(str(row[0]))


def add_many(conn: Conn, key: str | None, count: int, job_type: str = "t") -> list[UUID]:
    jobs = [{"job_type": job_type, "limit_key": key} for _ in range(count)]
    row = conn.execute("SELECT notify.add_queue_jobs(%s)", (Jsonb(jobs),)).fetchone()
    assert row is not None
    return list(row[0])


def claim_keys(conn: Conn, batch: int, job_type: str = "t") -> list[str | None]:
    """The limit keys of the jobs one claim hands out, in the claim's order."""
    return [
        row[0]
        for row in conn.execute(
            "SELECT j.limit_key FROM notify.claim_pending_jobs(%s, %s) c "
            "JOIN notify.queue_jobs j USING (id) ORDER BY c.priority, c.scheduled_for",
            ([job_type], batch),
        )
    ]


def set_limit(conn: Conn, key: str, **limits: Any) -> None:
    if isinstance(limits.get("p_max_per_second"), float):  # numeric, as PostgREST sends it
        limits["p_max_per_second"] = Decimal(str(limits["p_max_per_second"]))
    names = "".join(f", {name} => %({name})s" for name in limits)
    conn.execute(
        f"SELECT notify.set_queue_limit(p_limit_key => %(key)s{names})", {"key": key, **limits}
    )


def finish_running(db: Conn) -> None:
    db.execute("UPDATE notify.queue_jobs SET status = 'completed' WHERE status = 'processing'")


@pytest.mark.parametrize(
    ("limits", "parameter"),
    [
        ({"p_limit_key": None, "p_max_per_second": 1}, "p_limit_key"),
        ({"p_limit_key": "", "p_max_per_second": 1}, "p_limit_key"),
        ({"p_limit_key": "k" * 201, "p_max_per_second": 1}, "p_limit_key"),
        ({"p_limit_key": "k", "p_max_per_second": -1}, "p_max_per_second"),
        ({"p_limit_key": "k", "p_max_per_second": 0}, "p_max_per_second"),
        ({"p_limit_key": "k", "p_max_concurrent": 0}, "p_max_concurrent"),
        ({"p_limit_key": "k", "p_max_per_second": 1, "p_burst": -1}, "p_burst"),
        ({"p_limit_key": "k", "p_burst": 3}, "p_burst"),
    ],
)
def test_set_queue_limit_refuses_bad_values(
    service_db: Conn, db: Conn, limits: dict[str, Any], parameter: str
) -> None:
    names = ", ".join(f"{name} => %({name})s" for name in limits)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=f"^{parameter}"):
        service_db.execute(f"SELECT notify.set_queue_limit({names})", limits)
    assert db.execute("SELECT count(*) FROM notify.queue_limits").fetchone() == (0,)


@pytest.mark.parametrize(
    ("call", "parameter"),
    [
        ("SELECT notify.add_queue_job(NULL, 't', '{}', p_limit_key => '')", "p_limit_key"),
        ("SELECT notify.pause_queue_limit('k', 0)", "p_seconds"),
        ("SELECT notify.pause_queue_limit(NULL, 5)", "p_limit_key"),
        ('SELECT notify.add_queue_jobs(\'[{"job_type": "t", "limit_key": ""}]\')', "p_jobs"),
    ],
)
def test_limit_keys_and_pauses_are_checked(service_db: Conn, call: str, parameter: str) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=f"^{parameter}"):
        service_db.execute(call)


def test_set_queue_limit_sets_changes_and_removes(service_db: Conn, db: Conn) -> None:
    set_limit(service_db, "twilio:+15550001", p_max_per_second=1)
    set_limit(service_db, "email:example.com", p_max_concurrent=5)
    rows = db.execute(
        "SELECT limit_key, max_per_second, burst, max_concurrent FROM notify.queue_limits "
        "ORDER BY 1"
    ).fetchall()
    assert rows == [("email:example.com", None, None, 5), ("twilio:+15550001", 1, 1, None)]
    set_limit(service_db, "twilio:+15550001", p_max_per_second=100)  # burst: one second's worth
    assert db.execute(
        "SELECT burst FROM notify.queue_limits WHERE limit_key = 'twilio:+15550001'"
    ).fetchone() == (100,)
    set_limit(service_db, "twilio:+15550001")  # both NULL: removed
    assert db.execute("SELECT count(*) FROM notify.queue_limits").fetchone() == (1,)


def test_limit_key_is_the_last_argument_and_an_element_key(service_db: Conn, db: Conn) -> None:
    one = add(service_db, "tenant:42", p_priority=5, p_dedup_key="d")
    [two] = add_many(service_db, "tenant:43", 1)
    positional = service_db.execute(
        "SELECT notify.add_queue_job(NULL, 't', '{}', 10, now(), NULL, 'tenant:44')"
    ).fetchone()
    assert positional is not None
    keys = dict(db.execute("SELECT id, limit_key FROM notify.queue_jobs").fetchall())
    assert (keys[one], keys[two], keys[positional[0]]) == ("tenant:42", "tenant:43", "tenant:44")


def test_a_rate_limit_holds_back_the_key_and_nothing_else(service_db: Conn) -> None:
    set_limit(service_db, "slow", p_max_per_second=SLOW, p_burst=2)
    add_many(service_db, "slow", 50)
    add_many(service_db, "fast", 5)
    add_many(service_db, None, 5)
    got = Counter(claim_keys(service_db, 100))
    assert got == {"slow": 2, "fast": 5, None: 5}
    assert claim_keys(service_db, 100) == []


def test_a_concurrency_cap_counts_processing_jobs(service_db: Conn, db: Conn) -> None:
    set_limit(service_db, "capped", p_max_concurrent=3)
    add_many(service_db, "capped", 10)
    assert len(claim_keys(service_db, 10)) == 3
    assert claim_keys(service_db, 10) == []
    db.execute(
        "UPDATE notify.queue_jobs SET status = 'completed' "
        "WHERE id = (SELECT id FROM notify.queue_jobs WHERE status = 'processing' LIMIT 1)"
    )
    assert claim_keys(service_db, 10) == ["capped"]


def test_a_later_small_key_gets_its_share(service_db: Conn) -> None:
    add_many(service_db, "import", 200)
    add_many(service_db, "reset", 10)
    claimed: list[str | None] = []
    for _ in range(10):
        claimed += claim_keys(service_db, 4)
    # Keys in turn: the small key's 10 jobs are out within the first 20 claimed.
    assert claimed[:20].count("reset") == 10
    assert claimed.count("import") == 30


def test_order_within_a_key_is_priority_then_scheduled_for(service_db: Conn) -> None:
    now = datetime.now(UTC)
    late = add(service_db, "k", p_scheduled_for=now - timedelta(minutes=1))
    early = add(service_db, "k", p_scheduled_for=now - timedelta(minutes=5))
    urgent = add(service_db, "k", p_priority=1)
    add(service_db, "k", p_scheduled_for=now + timedelta(hours=1))
    ids = [
        row[0] for row in service_db.execute("SELECT id FROM notify.claim_pending_jobs('{t}', 10)")
    ]
    assert ids == [urgent, early, late]


def test_a_better_priority_goes_first_whatever_its_key(service_db: Conn) -> None:
    add_many(service_db, "bulk", 20)
    urgent = [add(service_db, key, p_priority=1) for key in ("x", None, "bulk")]
    ids = [
        row[0] for row in service_db.execute("SELECT id FROM notify.claim_pending_jobs('{t}', 3)")
    ]
    assert sorted(ids) == sorted(urgent)


def test_a_paused_key_waits_and_resumes(service_db: Conn, db: Conn) -> None:
    add_many(service_db, "twilio", 3)
    add_many(service_db, None, 2)
    until = service_db.execute("SELECT notify.pause_queue_limit('twilio', 30)").fetchone()
    assert until is not None and until[0] > datetime.now(UTC) + timedelta(seconds=20)
    assert claim_keys(service_db, 10) == [None, None]
    next_start = service_db.execute("SELECT notify.next_limited_start()").fetchone()
    assert next_start == until
    db.execute("UPDATE notify.queue_limits SET paused_until = now() - interval '1 second'")
    assert claim_keys(service_db, 10) == ["twilio"] * 3


def test_fail_with_retry_after_burns_no_attempt_and_pauses_the_key(
    service_db: Conn, db: Conn
) -> None:
    [job, other] = add_many(service_db, "twilio", 2)
    [(job_id, token)] = service_db.execute(
        "SELECT id, processing_token FROM notify.claim_pending_jobs('{t}', 1)"
    ).fetchall()
    assert job_id == job
    assert service_db.execute(
        "SELECT notify.fail_queue_job(p_job_id => %s, p_error_message => '429', "
        "p_processing_token => %s, p_retry_after_seconds => 60)",
        (job, token),
    ).fetchone() == (True,)
    row = db.execute(
        "SELECT status, attempts, scheduled_for - now() FROM notify.queue_jobs WHERE id = %s",
        (job,),
    ).fetchone()
    assert row is not None and row[:2] == ("pending", 0)
    assert timedelta(seconds=59) < row[2] <= timedelta(seconds=60)
    assert claim_keys(service_db, 10) == []  # the other job of the key waits too
    db.execute("UPDATE notify.queue_limits SET paused_until = now() - interval '1 second'")
    assert claim_keys(service_db, 10) == ["twilio"]  # `other`; `job` is not due yet
    assert other != job


def test_next_limited_start_says_when_a_token_comes(service_db: Conn) -> None:
    set_limit(service_db, "k", p_max_per_second=2, p_burst=1)
    add_many(service_db, "k", 3)
    assert service_db.execute("SELECT notify.next_limited_start()").fetchone() == (None,)
    assert claim_keys(service_db, 10) == ["k"]
    row = service_db.execute("SELECT notify.next_limited_start() - clock_timestamp()").fetchone()
    assert row is not None and timedelta(0) < row[0] <= timedelta(seconds=0.5)


def test_queue_limit_status_shows_limit_backlog_and_rate(service_db: Conn) -> None:
    set_limit(service_db, "k", p_max_per_second=SLOW, p_burst=2, p_max_concurrent=5)
    add_many(service_db, "k", 5)
    claim_keys(service_db, 10)
    [row] = service_db.execute(
        "SELECT limit_key, max_per_second, burst, max_concurrent, paused_until, tokens, "
        "backlog, running, current_rate FROM notify.queue_limit_status()"
    ).fetchall()
    assert row[:5] == ("k", Decimal(str(SLOW)), 2, 5, None)
    assert row[5] < 1 and (row[6], row[7]) == (3, 2)
    assert float(row[8]) == pytest.approx(2 / 60, abs=0.001)


def test_enqueue_notifies_only_while_a_worker_is_idle(service_db: Conn, dsn: str) -> None:
    with (
        psycopg.connect(dsn, autocommit=True) as listener,
        psycopg.connect(dsn, autocommit=True) as worker,
    ):
        listener.execute(f'LISTEN "{wake_channel()}"')
        add(service_db, None, "busy")  # no worker has come back empty-handed yet
        service_db.execute("SELECT 1")
        assert [n.payload for n in listener.notifies(timeout=0.3)] == []
        # A short claim: the worker is idle.
        assert Queue(worker).claim_pending_jobs(["t"], batch_size=5) == []
        add(service_db, None, "t")
        assert [n.payload for n in listener.notifies(timeout=5, stop_after=1)] == ["t"]
        # A full batch: busy again.
        assert len(Queue(worker).claim_pending_jobs(["t", "busy"], batch_size=2)) == 2
        add(service_db, None, "t")
        service_db.execute("SELECT 1")
        assert [n.payload for n in listener.notifies(timeout=0.3)] == []
        service_db.execute("SET notify_sql.enqueue_notify = always")
        add(service_db, None, "t")
        assert [n.payload for n in listener.notifies(timeout=5, stop_after=1)] == ["t"]
    # The idle worker's session ended: its idle mark went with it.
    service_db.execute("RESET notify_sql.enqueue_notify")


def test_a_short_claim_claims_again_after_marking_the_worker_idle(
    service_db: Conn, dsn: str
) -> None:
    """The second pass of a short claim: with the idle mark in place, a job committed
    by an enqueuer that saw no idle worker is found by the claim itself."""
    with psycopg.connect(dsn, autocommit=True) as worker:
        add_many(service_db, None, 1)
        assert len(Queue(worker).claim_pending_jobs(["t"], batch_size=5)) == 1
        row = worker.execute("SELECT current_setting('notify_sql.idle_notify', true)").fetchone()
        assert row == ("on",)


def test_a_worker_going_idle_waits_for_an_enqueuer_that_checked_before_it(
    service_db: Conn, dsn: str
) -> None:
    """No lost wake-up: the enqueuer checked for idle workers (none, so no NOTIFY) and
    commits only while the worker, gone idle, waits for the enqueue gate; the worker's
    second pass must find the job."""
    with (
        psycopg.connect(dsn) as enqueuer,
        psycopg.connect(dsn, autocommit=True) as worker,
        psycopg.connect(dsn, autocommit=True) as watcher,
    ):
        enqueuer.execute("SET ROLE service_role")
        add(enqueuer, None, "t")  # not committed yet
        row = worker.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None

        def commit_once_the_worker_waits() -> None:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and watcher.execute(
                "SELECT wait_event IS DISTINCT FROM 'PgSleep' FROM pg_stat_activity WHERE pid = %s",
                row,
            ).fetchone() != (False,):
                pass
            enqueuer.commit()

        committer = threading.Thread(target=commit_once_the_worker_waits)
        committer.start()
        claimed = Queue(worker).claim_pending_jobs(["t"], batch_size=5)
        committer.join()
    assert len(claimed) == 1


def test_a_batch_is_not_left_short_while_a_key_has_startable_jobs(service_db: Conn) -> None:
    set_limit(service_db, "one", p_max_per_second=SLOW, p_burst=1)
    add_many(service_db, "one", 5)
    add_many(service_db, "many", 10)
    assert Counter(claim_keys(service_db, 6)) == {"many": 5, "one": 1}
