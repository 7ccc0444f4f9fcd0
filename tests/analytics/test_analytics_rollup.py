"""The funnel sums of 0005 stay equal to a recount of the deliveries, whatever writes
them: random sequences of inserts, status moves, created_at and channel moves, deletes
(direct and cascaded from events), rolled-back writes, TRUNCATE; concurrent callback
writers and compactions; loads that bypass triggers, then a rebuild. And windows read
from the sums agree with windows read row by row, in time zones that split slices.
"""

from __future__ import annotations

import random
import threading
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notify_sql.wrappers import Analytics, AsyncAnalytics

CHANNELS = ["email", "sms", "push", "in_app"]
STATUSES = ["pending", "sent", "cancelled", "failed", "delivered", "bounced", "opened", "clicked"]
TIMESTAMPS = ["sent_at", "delivered_at", "opened_at", "clicked_at"]

# Rows of the sums (per slice and channel, all writers added up, all-zero rows dropped)
# that a recount of the deliveries does not give, and the other way round.
MISMATCHES_SQL = """
WITH kept AS (
  SELECT slice_start, channel, sum(total_sent) AS total_sent, sum(sent) AS sent,
         sum(delivered) AS delivered, sum(opened) AS opened, sum(clicked) AS clicked,
         sum(failed) AS failed, sum(sent_us_sum) AS sent_us_sum,
         sum(sent_us_count) AS sent_us_count, sum(delivered_us_sum) AS delivered_us_sum,
         sum(delivered_us_count) AS delivered_us_count
  FROM notify.delivery_funnel_rollup
  GROUP BY 1, 2
),
recount (slice_start, channel, total_sent, sent, delivered, opened, clicked, failed,
         sent_us_sum, sent_us_count, delivered_us_sum, delivered_us_count) AS (
  SELECT notify.delivery_funnel_slice(d.created_at), d.channel, sum(f.total_sent),
         sum(f.sent), sum(f.delivered), sum(f.opened), sum(f.clicked), sum(f.failed),
         coalesce(sum(f.sent_us), 0), count(f.sent_us), coalesce(sum(f.delivered_us), 0),
         count(f.delivered_us)
  FROM notify.notification_deliveries d
  CROSS JOIN LATERAL notify.delivery_funnel_of(d.status, d.created_at, d.sent_at,
                                               d.delivered_at, d.opened_at, d.clicked_at) f
  GROUP BY 1, 2
),
-- A slice whose rows add nothing (cancelled only, or all deleted) may or may not
-- have a row of zeros: compare the rest.
nonzero_kept AS (
  SELECT * FROM kept k WHERE row(k.total_sent, k.sent, k.delivered, k.opened, k.clicked,
    k.failed, k.sent_us_sum, k.sent_us_count, k.delivered_us_sum, k.delivered_us_count)
    <> row(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
),
nonzero_recount AS (
  SELECT * FROM recount r WHERE row(r.total_sent, r.sent, r.delivered, r.opened, r.clicked,
    r.failed, r.sent_us_sum, r.sent_us_count, r.delivered_us_sum, r.delivered_us_count)
    <> row(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
)
(SELECT 'sums only', * FROM (SELECT * FROM nonzero_kept
                             EXCEPT ALL SELECT * FROM nonzero_recount) a)
UNION ALL
(SELECT 'recount only', * FROM (SELECT * FROM nonzero_recount
                                EXCEPT ALL SELECT * FROM nonzero_kept) b)
"""

INSERT_SQL = """
INSERT INTO notify.notification_deliveries
  (id, event_id, recipient_user_id, channel, status, created_at, sent_at, delivered_at,
   opened_at, clicked_at)
VALUES (%(id)s, %(event_id)s, %(recipient)s, %(channel)s, %(status)s, now() - %(age)s,
        now() - %(age)s + %(sent_at)s, now() - %(age)s + %(delivered_at)s,
        now() - %(age)s + %(opened_at)s, now() - %(age)s + %(clicked_at)s)
"""


def mismatches(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(MISMATCHES_SQL).fetchall()


def delivery_row(
    channel: str, status: str, age: timedelta, after: dict[str, timedelta], event: UUID | None
) -> dict[str, Any]:
    return {
        "id": uuid4(),
        "event_id": event,
        "recipient": UUID(int=1),
        "channel": channel,
        "status": status,
        "age": age,
        **{column: after.get(column) for column in TIMESTAMPS},
    }


ages = st.builds(timedelta, minutes=st.integers(0, 60 * 24 * 3), seconds=st.integers(0, 59))
afters = st.dictionaries(
    st.sampled_from(TIMESTAMPS), st.builds(timedelta, seconds=st.integers(0, 100_000))
)
operations = st.one_of(
    st.tuples(st.just("insert"), st.sampled_from(CHANNELS), st.sampled_from(STATUSES), ages,
              afters, st.booleans()),
    st.tuples(st.just("status"), st.integers(0, 99), st.sampled_from(STATUSES)),
    st.tuples(st.just("stamp"), st.integers(0, 99), st.sampled_from(TIMESTAMPS), ages),
    st.tuples(st.just("move"), st.integers(0, 99), st.sampled_from(CHANNELS), ages),
    st.tuples(st.just("untracked"), st.integers(0, 99)),
    st.tuples(st.just("delete"), st.integers(0, 99)),
    st.tuples(st.just("delete_event"), st.integers(0, 99)),
    st.tuples(st.just("rolled_back"), st.integers(0, 99), st.sampled_from(STATUSES)),
    st.tuples(st.just("bulk_status"), st.sampled_from(STATUSES), st.sampled_from(CHANNELS)),
)  # fmt: skip


def apply(conn: psycopg.Connection[Any], operation: tuple[Any, ...], event: UUID) -> None:
    """One write to the deliveries; operations on an index pick an existing row."""
    kind, *args = operation
    ids = [row[0] for row in conn.execute(
        "SELECT id FROM notify.notification_deliveries ORDER BY id").fetchall()]  # fmt: skip
    if kind == "insert":
        channel, status, age, after, with_event = args
        conn.execute(INSERT_SQL, delivery_row(channel, status, age, after,
                                              event if with_event else None))  # fmt: skip
        return
    if kind == "bulk_status":
        status, channel = args
        conn.execute(
            "UPDATE notify.notification_deliveries SET status = %s WHERE channel = %s",
            (status, channel),
        )
        return
    if not ids:
        return
    target = ids[args[0] % len(ids)]
    if kind == "status":
        conn.execute(
            "UPDATE notify.notification_deliveries SET status = %s WHERE id = %s",
            (args[1], target),
        )
    elif kind == "stamp":
        conn.execute(
            f"UPDATE notify.notification_deliveries SET {args[1]} = now() - %s WHERE id = %s",
            (args[2], target),
        )
    elif kind == "move":
        conn.execute(
            "UPDATE notify.notification_deliveries SET channel = %s, created_at = now() - %s "
            "WHERE id = %s",
            (args[1], args[2], target),
        )
    elif kind == "untracked":  # columns outside the funnel: the WHEN clause skips it
        conn.execute(
            "UPDATE notify.notification_deliveries SET open_count = open_count + 1, "
            "last_error = 'x', updated_at = now() WHERE id = %s",
            (target,),
        )
    elif kind == "delete":
        conn.execute("DELETE FROM notify.notification_deliveries WHERE id = %s", (target,))
    elif kind == "delete_event":  # ON DELETE CASCADE removes its deliveries
        conn.execute("DELETE FROM notify.notification_events WHERE id = %s", (event,))
        conn.execute("INSERT INTO notify.notification_events (id, event_type) VALUES (%s, 't')",
                     (event,))  # fmt: skip
    elif kind == "rolled_back":
        with conn.transaction(force_rollback=True):
            conn.execute(
                "UPDATE notify.notification_deliveries SET status = %s, created_at = "
                "created_at - interval '1 day' WHERE id = %s",
                (args[1], target),
            )
            conn.execute("DELETE FROM notify.notification_deliveries WHERE id <> %s", (target,))


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(operations, min_size=1, max_size=25))
def test_sums_equal_a_recount_after_any_writes(
    db: psycopg.Connection[Any], steps: list[tuple[Any, ...]]
) -> None:
    db.execute("TRUNCATE notify.notification_deliveries CASCADE")
    assert db.execute("SELECT count(*) FROM notify.delivery_funnel_rollup").fetchone() == (0,)
    event = uuid4()
    db.execute("INSERT INTO notify.notification_events (id, event_type) VALUES (%s, 't')", (event,))
    for step in steps:
        apply(db, step, event)
    assert mismatches(db) == []


def test_the_recount_check_can_fail_and_rebuild_repairs(db: psycopg.Connection[Any]) -> None:
    """Rows loaded with triggers bypassed (replica role, as pg_restore --disable-triggers
    or a logical replication apply) are missing from the sums until a rebuild."""
    db.execute("SET session_replication_role = replica")
    db.execute(INSERT_SQL, delivery_row("sms", "delivered", timedelta(hours=2),
                                        {"sent_at": timedelta(seconds=3)}, None))  # fmt: skip
    db.execute("RESET session_replication_role")
    assert [row[0] for row in mismatches(db)] == ["recount only"]
    assert db.execute("SELECT notify.rebuild_delivery_funnel_rollup()").fetchone() == (1,)
    assert mismatches(db) == []
    assert db.execute(
        "SELECT writer_pid, sent, sent_us_sum FROM notify.delivery_funnel_rollup"
    ).fetchall() == [(0, 1, 3_000_000)]


def test_concurrent_writers_never_share_a_sums_row_and_stay_exact(dsn: str) -> None:
    """8 sessions move the statuses of 40 shared deliveries (as provider callbacks do)
    and emit new ones while a ninth compacts in a loop: no error, no deadlock, and the
    sums equal the recount, before and after a final compaction."""
    with psycopg.connect(dsn, autocommit=True) as admin:
        ids = [row[0] for row in admin.execute(
            "INSERT INTO notify.notification_deliveries (recipient_user_id, channel, status) "
            "SELECT gen_random_uuid(), (ARRAY['email', 'sms', 'push', 'in_app'])[1 + g % 4], "
            "'pending' FROM generate_series(1, 40) g RETURNING id").fetchall()]  # fmt: skip
        # emit broadcasts event 't' to its two subscribers.
        admin.execute("INSERT INTO notify.notification_subscriptions (user_id, event_type) "
                      "SELECT gen_random_uuid(), 't' FROM generate_series(1, 2)")  # fmt: skip
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            with psycopg.connect(dsn, autocommit=True, options="-c role=service_role") as conn:
                for _ in range(60):
                    if rng.random() < 0.2:
                        conn.execute(
                            "SELECT notify.emit_notification_event('t', '{}'::jsonb, "
                            "NULL, NULL, ARRAY['email', 'push'])"
                        )
                    else:
                        conn.execute(
                            "SELECT notify.apply_delivery_status(%s, %s)",
                            (rng.choice(ids), rng.choice(["sent", "delivered", "opened",
                                                          "clicked", "failed", "bounced"])),
                        )  # fmt: skip
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    def compactor() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True, options="-c role=service_role") as conn:
                while not stop.is_set():
                    conn.execute("SELECT notify.compact_delivery_funnel_rollup()")
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    folding = threading.Thread(target=compactor)
    folding.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    folding.join()
    assert errors == []
    with psycopg.connect(dsn, autocommit=True) as admin:
        assert mismatches(admin) == []
        performance = admin.execute(
            "SELECT * FROM notify.get_notification_channel_performance('1 day')"
        ).fetchall()
        admin.execute("SELECT notify.compact_delivery_funnel_rollup()")
        assert admin.execute(
            "SELECT DISTINCT writer_pid FROM notify.delivery_funnel_rollup"
        ).fetchall() == [(0,)]
        assert mismatches(admin) == []
        assert (
            admin.execute(
                "SELECT * FROM notify.get_notification_channel_performance('1 day')"
            ).fetchall()
            == performance
        )


def test_each_session_writes_its_own_sums_row(dsn: str) -> None:
    """Two sessions with open transactions on the same slice and channel do not wait
    for each other: each holds only its own row."""
    with (
        psycopg.connect(dsn) as first,
        psycopg.connect(dsn) as second,
    ):
        for conn in (first, second):
            conn.execute("SET lock_timeout = '2s'")
            conn.execute(
                "INSERT INTO notify.notification_deliveries (recipient_user_id, channel, "
                "status) VALUES (gen_random_uuid(), 'email', 'sent')"
            )
        first.commit()
        second.commit()
        pids = first.execute(
            "SELECT count(DISTINCT writer_pid) FROM notify.delivery_funnel_rollup"
        ).fetchone()
        assert pids == (2,)


def test_compaction_never_waits_for_a_writer(dsn: str) -> None:
    """A writer in an open transaction holds its sums row; compaction skips it instead
    of waiting (no lock wait, so no deadlock with a writer upserting two rows), and
    folds it once the writer commits."""
    insert = (
        "INSERT INTO notify.notification_deliveries (recipient_user_id, channel, status) "
        "VALUES (gen_random_uuid(), 'sms', %s)"
    )
    with psycopg.connect(dsn) as writer, psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(insert, ("sent",))
        writer.execute(insert, ("sent",))
        writer.commit()
        writer.execute(insert, ("delivered",))  # updates, so locks, its committed sums row
        admin.execute("SET lock_timeout = '1s'")
        assert admin.execute("SELECT notify.compact_delivery_funnel_rollup()").fetchone() == (1,)
        writer.commit()
        assert admin.execute("SELECT notify.compact_delivery_funnel_rollup()").fetchone() == (1,)
        assert admin.execute(
            "SELECT writer_pid, sent, delivered FROM notify.delivery_funnel_rollup"
        ).fetchall() == [(0, 3, 1)]


def test_a_rolled_back_write_leaves_the_sums_untouched(db: psycopg.Connection[Any]) -> None:
    with db.transaction(force_rollback=True):
        db.execute(INSERT_SQL, delivery_row("push", "sent", timedelta(0), {}, None))
        assert db.execute("SELECT sum(sent) FROM notify.delivery_funnel_rollup").fetchone() == (1,)
    assert db.execute("SELECT count(*) FROM notify.delivery_funnel_rollup").fetchone() == (0,)


TIMELINE_ROW_BY_ROW = """
SELECT date_trunc('day', d.created_at), sum(f.total_sent)::bigint, sum(f.sent)::bigint,
       sum(f.delivered)::bigint, sum(f.failed)::bigint
FROM notify.notification_deliveries d
CROSS JOIN LATERAL notify.delivery_funnel_of(d.status, d.created_at, d.sent_at,
                                             d.delivered_at, d.opened_at, d.clicked_at) f
WHERE d.created_at >= now() - interval '3 days'
GROUP BY 1 ORDER BY 1
"""


def test_day_buckets_are_exact_in_any_time_zone(db: psycopg.Connection[Any]) -> None:
    """Deliveries a few minutes either side of every local midnight: in a zone whose
    days start on a slice boundary (Kathmandu, +05:45) the buckets come from the sums;
    in one where they do not (+00:07, as local mean times were) a slice would straddle
    midnight, and the window is read row by row instead. Either way each delivery lands
    in the day it was created in."""
    for zone in ("Asia/Kathmandu", "UTC", "<+0007>-00:07"):
        db.execute("TRUNCATE notify.notification_deliveries CASCADE")
        db.execute("SELECT set_config('TimeZone', %s, false)", (zone,))
        db.execute(
            "INSERT INTO notify.notification_deliveries (recipient_user_id, channel, status, "
            "created_at) SELECT gen_random_uuid(), 'email', "
            "(ARRAY['sent', 'delivered', 'failed'])[1 + (m + 9) % 3], "
            "date_trunc('day', now()) - d * interval '1 day' + m * interval '1 minute' "
            "FROM generate_series(0, 2) d, generate_series(-9, 9) m"
        )
        with db.transaction():  # one now() for both reads
            timeline = db.execute(
                "SELECT bucket_start, total_sent, sent, delivered, failed "
                "FROM notify.get_notification_delivery_timeline('3 days', 'day') "
                "WHERE total_sent > 0"
            ).fetchall()
            assert timeline == db.execute(TIMELINE_ROW_BY_ROW).fetchall(), zone


async def test_maintenance_wrappers_sync_and_async(
    dsn: str, service_db: psycopg.Connection[Any]
) -> None:
    """compact and rebuild through the typed wrappers, as service_role."""
    service_db.execute(
        "INSERT INTO notify.notification_deliveries (recipient_user_id, channel, status) "
        "SELECT gen_random_uuid(), 'email', 'sent' FROM generate_series(1, 3)"
    )
    analytics = Analytics(service_db)
    assert (
        analytics.compact_delivery_funnel_rollup() == 1
    )  # this session's row, folded into writer 0
    assert analytics.compact_delivery_funnel_rollup() == 0
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SET ROLE service_role")
        remote = AsyncAnalytics(conn)
        assert await remote.rebuild_delivery_funnel_rollup() == 1
        assert await remote.compact_delivery_funnel_rollup() == 0
    assert mismatches(service_db) == []
