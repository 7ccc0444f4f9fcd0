"""What keeps /metrics, the overview and /trace flat in table size, checked through the
server's own statistics (no timing): the status counts and the sliced funnel read no
delivery row, recent failures read through their partial index, and the trace finds
jobs through queue_jobs_correlation_id_idx."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg

from notify_sql import monitor

Conn = psycopg.Connection[Any]

TABLE_SQL = """
SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)
FROM pg_stat_user_tables WHERE relid = %s::regclass
"""
INDEX_SQL = "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelid = %s::regclass"


def _after(db: Conn, query: str, name: str, work: Callable[[], object], changed: bool) -> int:
    """The change of a statistics counter over ``work``, once the server published it."""
    db.execute("SELECT pg_stat_force_next_flush()")
    db.execute("SELECT pg_stat_clear_snapshot()")
    row = db.execute(query, (name,)).fetchone()
    assert row is not None
    before = int(row[0])
    work()
    db.execute("SELECT pg_stat_force_next_flush()")
    deadline = time.monotonic() + 5
    while True:
        db.execute("SELECT pg_stat_clear_snapshot()")
        row = db.execute(query, (name,)).fetchone()
        assert row is not None
        if int(row[0]) != before or not changed or time.monotonic() > deadline:
            return int(row[0]) - before
        time.sleep(0.05)


def _deliveries(db: Conn) -> None:
    db.execute(
        "INSERT INTO notify.notification_deliveries (recipient_user_id, channel, status, "
        "created_at, failed_at) "
        "SELECT gen_random_uuid(), (ARRAY['email', 'sms'])[1 + g %% 2], "
        "(ARRAY['sent', 'delivered', 'failed', 'pending'])[1 + g %% 4], "
        "now() - g * interval '1 minute', "
        "CASE WHEN g %% 4 = 2 THEN now() - g * interval '1 minute' END "
        "FROM generate_series(1, %s) g",
        (3000,),
    )
    db.execute("ANALYZE notify.notification_deliveries")


def test_status_counts_and_sliced_funnel_read_no_delivery_row(db: Conn) -> None:
    _deliveries(db)  # 1,440 of them in the last 24 h
    table = "notify.notification_deliveries"
    status = lambda: monitor.delivery_status_counts(db, "notify", "24 hours")  # noqa: E731
    assert _after(db, TABLE_SQL, table, status, changed=False) == 0
    # The sliced funnel reads only the sums, plus the few index entries the planner
    # probes for the ends of the created_at range (a constant, whatever the table holds).
    sliced = lambda: [  # noqa: E731
        monitor.funnel_in_slices(db, "notify", window) for window in ("24 hours", "7 days")
    ]
    assert _after(db, TABLE_SQL, table, sliced, changed=False) <= 5


def test_recent_failures_read_through_the_failed_index(db: Conn) -> None:
    _deliveries(db)
    scans = _after(
        db,
        INDEX_SQL,
        "notify.notification_deliveries_failed_idx",
        lambda: monitor.recent_failures(db, "notify"),
        changed=True,
    )
    assert scans >= 1
    [row] = db.execute(
        "EXPLAIN (FORMAT JSON) SELECT * FROM notify.notification_deliveries f "
        "WHERE f.created_at >= now() - interval '24 hours' AND f.status IN ('failed', 'bounced') "
        "ORDER BY coalesce(f.failed_at, f.updated_at) DESC, f.id LIMIT 10"
    ).fetchone() or [None]
    assert "notification_deliveries_failed_idx" in str(row)


def test_the_trace_finds_jobs_through_the_correlation_index(db: Conn) -> None:
    db.execute(
        "INSERT INTO notify.queue_jobs (job_type, metadata) "
        "SELECT 't', jsonb_build_object('correlationId', 'c-' || g) "
        "FROM generate_series(1, 5000) g"
    )
    db.execute("ANALYZE notify.queue_jobs")
    scans = _after(
        db,
        INDEX_SQL,
        "notify.queue_jobs_correlation_id_idx",
        lambda: monitor.trace(db, "notify", "c-17"),
        changed=True,
    )
    assert scans >= 1
    assert [r["kind"] for r in monitor.trace(db, "notify", "c-17")] == ["job"]


def test_a_job_traced_under_its_own_id_is_read_by_its_key_not_indexed(db: Conn) -> None:
    """add_queue_job writes the job's own id as its correlationId when the caller gives
    none; the correlation index leaves such jobs out (0013) and the trace reads them by
    primary key, also among thousands of others."""
    for _ in range(5):
        db.execute(
            "SELECT notify.add_queue_jobs(jsonb_agg(jsonb_build_object('job_type', 't'))) "
            "FROM generate_series(1, 1000)"
        )
    db.execute("ANALYZE notify.queue_jobs")
    [(own,)] = db.execute("SELECT notify.add_queue_job(NULL, 't', '{}')").fetchall()
    [(entries,)] = db.execute(
        "SELECT count(*) FROM notify.queue_jobs WHERE (metadata ->> 'correlationId') <> id::text"
    ).fetchall()
    assert entries == 0  # what the index would hold
    scans = _after(
        db,
        INDEX_SQL,
        "notify.queue_jobs_pkey",
        lambda: monitor.trace(db, "notify", str(own)),
        changed=True,
    )
    assert scans >= 1
    assert [(r["kind"], r["id"]) for r in monitor.trace(db, "notify", str(own))] == [
        ("job", str(own))
    ]
    assert monitor.trace(db, "notify", str(own).upper()) == []  # the text as written
