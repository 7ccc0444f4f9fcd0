"""Queue RPCs, one behaviour per test, called as service_role (proving the grants)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from notify_sql.rpc import wake_channel
from notify_sql.wrappers import AsyncQueue, Queue
from tests.helpers.queue import new_job

Conn = psycopg.Connection[Any]


@pytest.fixture
def queue(service_db: Conn) -> Queue:
    return Queue(service_db)


def job_row(db: Conn, job_id: UUID | None) -> dict[str, Any]:
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        row = cur.execute("SELECT * FROM notify.queue_jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None
    return row


def backdate(db: Conn, job_id: UUID | None, column: str, minutes: int) -> None:
    """Moves a timestamp into the past instead of sleeping (as superuser)."""
    db.execute(
        psycopg.sql.SQL("UPDATE notify.queue_jobs SET {col} = now() - %s WHERE id = %s").format(
            col=psycopg.sql.Identifier(column)
        ),
        (timedelta(minutes=minutes), job_id),
    )


def test_claim_hands_out_a_fresh_token_and_counts_no_attempt_yet(queue: Queue) -> None:
    job_id = queue.add_queue_job(None, "email", {"to": "a"})
    [job] = queue.claim_pending_jobs(["email"], batch_size=5)
    assert job.id == job_id
    # attempts on a claimed row = earlier attempts (the seed platform's reading)
    assert (job.status, job.attempts) == ("processing", 0)
    assert job.metadata["to"] == "a" and UUID(job.metadata["correlationId"])
    assert job.started_at is not None
    assert job.queue_job_id is not None and job.queue_job_id.startswith("job_")
    assert queue.claim_pending_jobs(["email"], batch_size=5) == []


def test_claim_order_is_priority_then_scheduled_for_and_only_due_jobs(queue: Queue) -> None:
    now = datetime.now(UTC)
    late = queue.add_queue_job(None, "t", {}, priority=10, scheduled_for=now - timedelta(minutes=1))
    early = queue.add_queue_job(
        None, "t", {}, priority=10, scheduled_for=now - timedelta(minutes=5)
    )
    urgent = queue.add_queue_job(
        None, "t", {}, priority=1, scheduled_for=now - timedelta(seconds=1)
    )
    queue.add_queue_job(None, "t", {}, priority=0, scheduled_for=now + timedelta(hours=1))
    queue.add_queue_job(None, "other", {}, priority=0)
    assert [job.id for job in queue.claim_pending_jobs(["t"], batch_size=10)] == [
        urgent,
        early,
        late,
    ]


def test_claim_never_exceeds_its_batch_even_with_nested_loops_forced(
    queue: Queue, service_db: Conn
) -> None:
    # A nested loop is the plan under which an unfenced `IN (SELECT ... LIMIT n)` can be
    # re-run and claim more than n rows.
    service_db.execute("SET enable_hashjoin = off")
    service_db.execute("SET enable_mergejoin = off")
    queue.add_queue_jobs([new_job("t") for _ in range(100)])
    seen: set[UUID] = set()
    for _ in range(15):
        batch = queue.claim_pending_jobs(["t"], batch_size=7)
        assert len(batch) <= 7
        seen.update(job.id for job in batch if job.id)
    assert len(seen) == 100


def test_complete_is_fenced_by_the_token(queue: Queue, db: Conn) -> None:
    queue.add_queue_job(None, "t", {})
    [job] = queue.claim_pending_jobs(["t"], batch_size=1)
    assert not queue.complete_queue_job(job.id, processing_token=uuid4())
    assert queue.complete_queue_job(
        job.id, processing_token=job.processing_token, result={"ok": True}
    )
    assert not queue.complete_queue_job(job.id, processing_token=job.processing_token)
    row = job_row(db, job.id)
    assert (row["status"], row["result"]) == ("completed", {"ok": True})
    assert row["completed_at"] is not None


def test_stalled_worker_is_fenced_after_reset_and_reclaim(queue: Queue, db: Conn) -> None:
    queue.add_queue_job(None, "t", {})
    [first] = queue.claim_pending_jobs(["t"], batch_size=1)
    backdate(db, first.id, "started_at", 10)
    backdate(db, first.id, "updated_at", 10)
    assert queue.reset_stalled_jobs(stall_timeout=timedelta(minutes=5)) == 1
    [second] = queue.claim_pending_jobs(["t"], batch_size=1)
    assert second.id == first.id and second.attempts == 1  # the stall counted
    assert not queue.heartbeat_queue_job(first.id, first.processing_token)
    assert not queue.complete_queue_job(first.id, processing_token=first.processing_token)
    assert not queue.fail_queue_job(first.id, "late", processing_token=first.processing_token)
    assert queue.complete_queue_job(second.id, processing_token=second.processing_token)
    assert job_row(db, first.id)["status"] == "completed"


def test_heartbeat_keeps_a_long_job_from_being_reset(queue: Queue, db: Conn) -> None:
    queue.add_queue_job(None, "t", {})
    [job] = queue.claim_pending_jobs(["t"], batch_size=1)
    backdate(db, job.id, "started_at", 10)
    assert queue.heartbeat_queue_job(job.id, job.processing_token)
    assert queue.reset_stalled_jobs(stall_timeout=timedelta(minutes=5)) == 0
    backdate(db, job.id, "updated_at", 6)
    assert queue.reset_stalled_jobs(stall_timeout=timedelta(minutes=5)) == 1
    assert job_row(db, job.id)["status"] == "pending"


def test_stalled_job_out_of_attempts_fails(queue: Queue, db: Conn) -> None:
    job_id = queue.add_queue_job(None, "t", {})
    db.execute("UPDATE notify.queue_jobs SET max_attempts = 1 WHERE id = %s", (job_id,))
    queue.claim_pending_jobs(["t"], batch_size=1)
    backdate(db, job_id, "started_at", 10)
    backdate(db, job_id, "updated_at", 10)
    assert queue.reset_stalled_jobs(stall_timeout=timedelta(minutes=5)) == 1
    row = job_row(db, job_id)
    assert row["status"] == "failed" and row["error_message"].startswith("stalled")


def test_reset_stalled_is_bounded_by_its_batch(queue: Queue, db: Conn) -> None:
    queue.add_queue_jobs([new_job("t") for _ in range(5)])
    queue.claim_pending_jobs(["t"], batch_size=5)
    db.execute(
        "UPDATE notify.queue_jobs SET started_at = now() - interval '1 hour', "
        "updated_at = now() - interval '1 hour'"
    )
    assert queue.reset_stalled_jobs(stall_timeout=timedelta(minutes=5), batch_size=2) == 2
    assert queue.reset_stalled_jobs(stall_timeout=timedelta(minutes=5), batch_size=10) == 3


def test_retry_backs_off_exponentially_until_max_attempts(queue: Queue, db: Conn) -> None:
    job_id = queue.add_queue_job(None, "t", {})
    for attempt, (low, high) in enumerate([(5, 10), (10, 20)], start=1):
        [job] = queue.claim_pending_jobs(["t"], batch_size=1)
        assert job.attempts == attempt - 1
        assert queue.fail_queue_job(
            job.id, f"boom {attempt}", processing_token=job.processing_token
        )
        row = job_row(db, job_id)
        delay = (row["scheduled_for"] - row["updated_at"]).total_seconds()
        assert row["status"] == "pending" and row["processing_token"] is None
        assert low <= delay < high, delay
        assert queue.claim_pending_jobs(["t"], batch_size=1) == []  # not due yet
        backdate(db, job_id, "scheduled_for", 1)
    [job] = queue.claim_pending_jobs(["t"], batch_size=1)
    assert queue.fail_queue_job(job.id, "boom 3", processing_token=job.processing_token)
    row = job_row(db, job_id)
    assert (row["status"], row["attempts"], row["error_message"]) == ("failed", 3, "boom 3")
    assert row["completed_at"] is not None


def test_retry_delay_is_capped_and_jittered(service_db: Conn) -> None:
    delays = [
        row[0].total_seconds()
        for row in service_db.execute(
            "SELECT notify.queue_retry_delay(30) FROM generate_series(1, 50)"
        )
    ]
    assert all(1800 <= d < 3600 for d in delays)
    assert len(set(delays)) > 1


def test_fail_without_retry_is_final(queue: Queue, db: Conn) -> None:
    job_id = queue.add_queue_job(None, "t", {})
    [job] = queue.claim_pending_jobs(["t"], batch_size=1)
    assert queue.fail_queue_job(
        job.id, "bad input", processing_token=job.processing_token, retry=False
    )
    assert job_row(db, job_id)["status"] == "failed"


def test_batch_complete_and_fail_fence_each_job(queue: Queue, db: Conn) -> None:
    queue.add_queue_jobs([new_job("t") for _ in range(4)])
    a, b, c, d = queue.claim_pending_jobs(["t"], batch_size=4)
    completed = queue.complete_queue_jobs(
        [a.id, b.id], [a.processing_token, uuid4()], results=[{"n": 1}, None]
    )
    assert completed == [a.id]
    assert job_row(db, a.id)["result"] == {"n": 1}
    failed = queue.fail_queue_jobs(
        [b.id, c.id], [b.processing_token, uuid4()], ["x", "y"], retry=False
    )
    assert failed == [b.id]
    assert queue.complete_queue_jobs([], []) == []
    assert queue.release_queue_jobs([c.id, d.id], [c.processing_token, d.processing_token]) == [
        c.id,
        d.id,
    ]
    assert (job_row(db, c.id)["status"], job_row(db, c.id)["attempts"]) == ("pending", 0)


def test_dedup_returns_the_live_job_until_it_finishes(queue: Queue) -> None:
    first = queue.add_queue_job(None, "t", {}, dedup_key="k")
    assert queue.add_queue_job(None, "t", {"other": 1}, dedup_key="k") == first
    [job] = queue.claim_pending_jobs(["t"], batch_size=1)
    assert (
        queue.add_queue_job(None, "t", {}, dedup_key="k") == first
    )  # processing still holds the key
    queue.complete_queue_job(job.id, processing_token=job.processing_token)
    assert queue.add_queue_job(None, "t", {}, dedup_key="k") != first


def test_bulk_enqueue_keeps_order_and_dedups_within_and_across(queue: Queue, db: Conn) -> None:
    existing = queue.add_queue_job(None, "t", {}, dedup_key="old")
    user = uuid4()
    ids = queue.add_queue_jobs(
        [
            new_job("t", {"n": 1}, dedup_key="new"),
            new_job("t", {"n": 2}),
            new_job("t", {"n": 3}, dedup_key="new"),
            new_job("t", {"n": 4}, dedup_key="old"),
            new_job("u", {"n": 5}, user_id=user, priority=1, max_attempts=7),
        ]
    )
    assert ids is not None
    assert ids[0] == ids[2] and ids[3] == existing
    assert len(set(ids)) == 4
    assert job_row(db, ids[1])["metadata"]["n"] == 2
    row = job_row(db, ids[4])
    assert (row["user_id"], row["priority"], row["max_attempts"]) == (user, 1, 7)
    count = db.execute("SELECT count(*) FROM notify.queue_jobs").fetchone()
    assert count == (4,)


def test_enqueue_sets_queue_job_ids_in_the_column_default_form(queue: Queue, db: Conn) -> None:
    """add_queue_job(s) build queue_job_id themselves (cheaper than the default): the same
    form, 'job_<UTC time to the microsecond>_<12 hex digits>', unique per job, on every
    path (plain, dedup, bulk fast path, bulk dedup path), like a directly inserted row."""
    ids = [
        queue.add_queue_job(None, "t", {}),
        queue.add_queue_job(None, "t", {}, dedup_key="a"),
        *(queue.add_queue_jobs([new_job("t", {"n": n}) for n in range(50)]) or []),
        *(
            queue.add_queue_jobs([new_job("t", {"n": n}, dedup_key=f"k{n}") for n in range(50)])
            or []
        ),
    ]
    db.execute("INSERT INTO notify.queue_jobs (job_type) VALUES ('direct')")
    rows = db.execute(
        "SELECT id, queue_job_id, created_at FROM notify.queue_jobs ORDER BY job_type, id"
    ).fetchall()
    assert len(rows) == len(ids) + 1 and {row[0] for row in rows} >= set(ids)
    assert len({row[1] for row in rows}) == len(rows)
    for _id, queue_job_id, created_at in rows:
        assert re.fullmatch(r"job_\d{20}_[0-9a-f]{12}", queue_job_id), queue_job_id
        stamp = datetime.strptime(queue_job_id[4:24], "%Y%m%d%H%M%S%f").replace(tzinfo=UTC)
        assert abs(stamp - created_at) < timedelta(seconds=5)


def test_cancel_jobs_atomic_cancels_matching_live_jobs(queue: Queue, db: Conn) -> None:
    user, other = uuid4(), uuid4()
    keep_type = queue.add_queue_job(user, "digest", {})
    match = queue.add_queue_job(user, "sms", {"campaign": "x", "n": 1})
    no_match = queue.add_queue_job(user, "sms", {"campaign": "y"})
    queue.add_queue_job(other, "sms", {"campaign": "x"})
    cancelled = queue.cancel_jobs_atomic(user, "sms", metadata_filter={"campaign": "x"})
    assert [(c.id, c.status) for c in cancelled] == [(match, "cancelled")]
    assert job_row(db, no_match)["status"] == "pending"
    assert job_row(db, keep_type)["status"] == "pending"
    [job] = queue.claim_pending_jobs(["digest"], batch_size=1)
    assert queue.cancel_jobs_atomic(user, "digest", allowed_statuses=["pending"]) == []
    assert [c.id for c in queue.cancel_jobs_atomic(user, "digest")] == [job.id]
    assert not queue.complete_queue_job(job.id, processing_token=job.processing_token)


def test_cancel_brief_jobs_for_date(queue: Queue, db: Conn) -> None:
    user = uuid4()
    keep = queue.add_queue_job(user, "generate_daily_brief", {"briefDate": "2025-10-10"})
    drop = queue.add_queue_job(user, "generate_daily_brief", {"briefDate": "2025-10-10"})
    other_day = queue.add_queue_job(user, "generate_daily_brief", {"briefDate": "2025-10-11"})
    other_type = queue.add_queue_job(user, "email", {"briefDate": "2025-10-10"})
    result = queue.cancel_brief_jobs_for_date(user, "2025-10-10", exclude_job_id=keep)[0]
    assert result.cancelled_count == 1
    assert result.cancelled_job_ids == [job_row(db, drop)["queue_job_id"]]
    assert [job_row(db, j)["status"] for j in (keep, drop, other_day, other_type)] == [
        "pending",
        "cancelled",
        "pending",
        "pending",
    ]
    assert queue.cancel_brief_jobs_for_date(user, "2025-10-12")[0].cancelled_count == 0


def test_cancel_job_with_reason(queue: Queue, db: Conn) -> None:
    pending = queue.add_queue_job(None, "a", {})
    assert queue.cancel_job_with_reason(pending, "user asked")
    assert job_row(db, pending)["error_message"] == "user asked"
    assert not queue.cancel_job_with_reason(pending, "again")  # already finished
    queue.add_queue_job(None, "b", {})
    [job] = queue.claim_pending_jobs(["b"], batch_size=1)
    assert not queue.cancel_job_with_reason(job.id, "busy")
    assert queue.cancel_job_with_reason(job.id, "busy", allow_processing=True)
    assert not queue.heartbeat_queue_job(job.id, job.processing_token)
    assert not queue.cancel_job_with_reason(uuid4(), "missing")


def test_stats_and_prune(queue: Queue, db: Conn) -> None:
    queue.add_queue_jobs([new_job("t") for _ in range(3)] + [new_job("u")])
    claimed = queue.claim_pending_jobs(["t"], batch_size=2)
    queue.complete_queue_jobs([j.id for j in claimed], [j.processing_token for j in claimed])
    stats = {(s.job_type, s.status): s for s in queue.queue_stats()}
    assert {key: s.job_count for key, s in stats.items()} == {
        ("t", "completed"): 2,
        ("t", "pending"): 1,
        ("u", "pending"): 1,
    }
    assert stats[("t", "pending")].max_wait is not None
    assert stats[("t", "completed")].max_wait is None
    assert queue.prune_queue_jobs(older_than=timedelta(hours=1)) == 0
    db.execute("UPDATE notify.queue_jobs SET completed_at = now() - interval '2 hours'")
    # One batch per call (the caller loops, committing between batches).
    prune = [queue.prune_queue_jobs(older_than=timedelta(hours=1), batch_size=1) for _ in "abc"]
    assert prune == [1, 1, 0]
    assert db.execute("SELECT count(*) FROM notify.queue_jobs").fetchone() == (2,)


def test_notify_wakes_listeners_on_due_enqueue_only(
    queue: Queue, service_db: Conn, dsn: str
) -> None:
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute(f'LISTEN "{wake_channel()}"')
        # Enqueue notifies only while a worker is idle: one whose last claim came back
        # short (here on the listener's own session).
        assert Queue(listener).claim_pending_jobs(["nothing"], batch_size=1) == []
        queue.add_queue_job(None, "email", {})
        queue.add_queue_jobs([new_job("sms"), new_job("sms"), new_job("push")])
        queue.add_queue_job(None, "later", {}, scheduled_for=datetime.now(UTC) + timedelta(hours=1))
        service_db.execute("SET notify_sql.enqueue_notify = off")
        queue.add_queue_job(None, "silent", {})
        service_db.execute("SELECT 1")  # a round trip after the last commit
        payloads = sorted(n.payload for n in listener.notifies(timeout=10.0, stop_after=3))
        assert payloads == ["email", "push", "sms"]
        assert [n.payload for n in listener.notifies(timeout=0.3)] == []


async def test_async_queue_round_trip(dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SET ROLE service_role")
        queue = AsyncQueue(conn)
        job_id = await queue.add_queue_job(None, "t", {"n": 1}, dedup_key="a")
        assert await queue.add_queue_jobs([new_job("t", dedup_key="a")]) == [job_id]
        [job] = await queue.claim_pending_jobs(["t"], batch_size=10)
        assert await queue.heartbeat_queue_job(job.id, job.processing_token)
        assert await queue.complete_queue_job(
            job.id, processing_token=job.processing_token, result={"done": 1}
        )
        assert [s.job_count for s in await queue.queue_stats()] == [1]
        assert not await queue.cancel_job_with_reason(job.id, "too late")


def test_heartbeats_are_hot_updates(db: Conn) -> None:
    """Heartbeats touch no indexed column, so they never add index entries."""
    queue = Queue(db)
    queue.add_queue_job(None, "t", {})
    [job] = queue.claim_pending_jobs(["t"], batch_size=1)

    def hot_updates() -> int:
        db.execute("SELECT pg_stat_force_next_flush()")
        db.execute("SELECT pg_stat_clear_snapshot()")
        row = db.execute(
            "SELECT n_tup_hot_upd FROM pg_stat_user_tables "
            "WHERE relid = 'notify.queue_jobs'::regclass"
        ).fetchone()
        assert row is not None
        return int(row[0])

    before = hot_updates()
    for _ in range(20):
        assert queue.heartbeat_queue_job(job.id, job.processing_token)
    assert hot_updates() - before == 20
