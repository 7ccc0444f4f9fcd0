"""The status counts of 0011 stay equal to a COUNT(*) of the deliveries per slice, channel
and status, whatever writes them: status moves, channel and created_at moves, deletes,
rolled-back writes, TRUNCATE, concurrent callback writers with a compaction running,
and loads that bypass triggers (then a rebuild). get_delivery_status_counts, what
/metrics exports, equals a COUNT(*) over the same window."""

from __future__ import annotations

import random
from typing import Any

import psycopg
import pytest

from tests.helpers.concurrency import released_together

Conn = psycopg.Connection[Any]

# (slice, channel, status) counts the rollup holds (all writers added up, zero counts
# dropped) that a COUNT(*) does not give, and the other way round.
MISMATCHES_SQL = """
WITH kept AS (
  SELECT slice_start, channel, status, sum(deliveries) AS n
  FROM notify.delivery_status_rollup GROUP BY 1, 2, 3 HAVING sum(deliveries) <> 0
),
recount AS (
  SELECT notify.delivery_funnel_slice(created_at) AS slice_start, channel, status, count(*) AS n
  FROM notify.notification_deliveries GROUP BY 1, 2, 3
)
(SELECT 'rollup only', * FROM kept EXCEPT SELECT 'rollup only', * FROM recount)
UNION ALL
(SELECT 'recount only', * FROM recount EXCEPT SELECT 'recount only', * FROM kept)
"""

WINDOW_COUNT_SQL = """
SELECT channel, status, count(*) FROM notify.notification_deliveries
WHERE created_at >= notify.delivery_funnel_slice(now() - interval '24 hours')
GROUP BY 1, 2 ORDER BY 1, 2
"""

INSERT_SQL = """
INSERT INTO notify.notification_deliveries (recipient_user_id, channel, status, created_at)
SELECT gen_random_uuid(), (ARRAY['email', 'sms', 'push', 'in_app'])[1 + g %% 4], 'pending',
       now() - (g %% 30) * interval '1 hour'
FROM generate_series(1, %s) g RETURNING id
"""


def mismatches(conn: Conn) -> list[tuple[Any, ...]]:
    return conn.execute(MISMATCHES_SQL).fetchall()


def window_counts(conn: Conn) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT * FROM notify.get_delivery_status_counts('24 hours')").fetchall()


def test_counts_follow_every_kind_of_write(db: Conn) -> None:
    ids = [row[0] for row in db.execute(INSERT_SQL, (60,)).fetchall()]
    assert mismatches(db) == []
    for n, delivery in enumerate(ids[:40]):
        db.execute("SELECT notify.apply_delivery_status(%s, %s)",
                   (delivery, ["sent", "delivered", "failed", "opened"][n % 4]))  # fmt: skip
    db.execute(
        "UPDATE notify.notification_deliveries SET status = 'delivered' WHERE status = 'sent'"
    )  # fmt: skip  (sent -> delivered: one count moves)
    db.execute("UPDATE notify.notification_deliveries SET channel = 'sms' WHERE id = %s",
               (ids[41],))  # fmt: skip
    db.execute("UPDATE notify.notification_deliveries SET created_at = created_at - "
               "interval '3 days' WHERE id = ANY(%s)", (ids[42:46],))  # fmt: skip
    db.execute("DELETE FROM notify.notification_deliveries WHERE id = ANY(%s)", (ids[50:55],))
    db.execute("UPDATE notify.notification_deliveries SET last_error = 'x'")  # no move
    db.execute("BEGIN")
    db.execute("UPDATE notify.notification_deliveries SET status = 'cancelled'")
    db.execute("ROLLBACK")
    assert mismatches(db) == []
    assert window_counts(db) == db.execute(WINDOW_COUNT_SQL).fetchall()
    db.execute("TRUNCATE notify.notification_deliveries CASCADE")
    assert db.execute("SELECT count(*) FROM notify.delivery_status_rollup").fetchone() == (0,)


def test_the_check_can_fail_and_rebuild_repairs(db: Conn) -> None:
    db.execute("SET session_replication_role = replica")  # a load that bypasses triggers
    db.execute(INSERT_SQL, (3,))
    db.execute("RESET session_replication_role")
    assert {row[0] for row in mismatches(db)} == {"recount only"}
    assert window_counts(db) != db.execute(WINDOW_COUNT_SQL).fetchall()
    db.execute("SELECT notify.rebuild_delivery_status_rollup()")
    assert mismatches(db) == []
    assert window_counts(db) == db.execute(WINDOW_COUNT_SQL).fetchall()


def test_concurrent_status_moves_lose_no_count(dsn: str) -> None:
    """8 sessions move the statuses of the same 40 deliveries (as provider callbacks do)
    while a ninth compacts: no error, and the counts equal a COUNT(*) before and after a
    final compaction, which leaves one row per slice, channel and status."""
    with psycopg.connect(dsn, autocommit=True) as admin:
        ids = [row[0] for row in admin.execute(INSERT_SQL, (40,)).fetchall()]

    def writer(seed: int) -> Any:
        def run(conn: Conn) -> None:
            rng = random.Random(seed)
            conn.execute("SET ROLE service_role")
            for _ in range(80):
                status = rng.choice(["sent", "delivered", "failed", "pending", "opened"])
                conn.execute("UPDATE notify.notification_deliveries SET status = %s "
                             "WHERE id = %s", (status, rng.choice(ids)))  # fmt: skip

        return run

    def compactor(conn: Conn) -> None:
        conn.execute("SET ROLE service_role")
        for _ in range(40):
            conn.execute("SELECT notify.compact_delivery_funnel_rollup()")

    released_together(dsn, [writer(n) for n in range(8)] + [compactor])
    with psycopg.connect(dsn, autocommit=True) as admin:
        assert mismatches(admin) == []
        assert window_counts(admin) == admin.execute(WINDOW_COUNT_SQL).fetchall()
        total = admin.execute("SELECT sum(deliveries) FROM notify.delivery_status_rollup")
        assert total.fetchone() == (40,)
        admin.execute("SELECT notify.compact_delivery_funnel_rollup()")
        assert admin.execute(
            "SELECT DISTINCT writer_pid FROM notify.delivery_status_rollup"
        ).fetchall() == [(0,)]
        assert mismatches(admin) == []
        assert window_counts(admin) == admin.execute(WINDOW_COUNT_SQL).fetchall()


def test_a_bad_window_is_refused(db: Conn) -> None:
    for bad in (None, "0 hours", "soon"):
        with pytest.raises(psycopg.errors.InvalidParameterValue, match=r"^p_interval"):
            db.execute("SELECT * FROM notify.get_delivery_status_counts(%s)", (bad,))
