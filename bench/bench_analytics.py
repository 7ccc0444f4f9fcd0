"""Analytics at scale: do the dashboard functions cost what their window holds?

    .venv/bin/python -m bench.bench_analytics              # 1,000,000 then 10,000,000
    .venv/bin/python -m bench.bench_analytics --rows 1000000

For each size it starts a throwaway PostgreSQL, installs notify-sql, generates that many
deliveries (and about half as many events) spread evenly over 90 days with a realistic
mix of channels and statuses, then times every analytics function for 24 hours, 7 days
and 30 days windows (median of several warm runs, called as service_role) against the
same funnel aggregated over the whole table in the same run. It ends with the plans
(EXPLAIN ANALYZE, BUFFERS) of the 7-day channel performance, read from inside the
function by auto_explain, and of the full-table aggregate.
"""

from __future__ import annotations

import argparse
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import psycopg

from notify_sql.migrator import migrate
from notify_sql.throwaway import SUPERUSER, ThrowawayPostgres, find_bindir, throwaway_postgres

BATCH = 1_000_000
WINDOWS = ["24 hours", "7 days", "30 days"]
RUNS = 3
# Loading only: bigger buffers and WAL so generating 10M rows does not checkpoint-storm.
SERVER_SETTINGS = {"shared_buffers": "1GB", "max_wal_size": "8GB", "checkpoint_timeout": "30min"}

EVENTS_SQL = """
INSERT INTO notify.notification_events (id, event_type, created_at)
SELECT md5('e' || j)::uuid,
       (ARRAY['task.due', 'brief.ready', 'comment.added', 'invite.sent', 'payment.failed',
              'trial.ending', 'report.ready', 'login.new_device'])[1 + j %% 8],
       now() - interval '90 days' + (2 * j)::float8 / %(rows)s * interval '90 days'
FROM generate_series(%(first)s / 2, (%(last)s - 1) / 2) AS j
ON CONFLICT (id) DO NOTHING
"""

# Channel mix email 45%, push 25%, in_app 20%, sms 10%. Status mix: 3% cancelled,
# 4% pending, 10% sent, 37% delivered, 20% opened, 12% clicked, 9% failed, 5% bounced.
DELIVERIES_SQL = """
INSERT INTO notify.notification_deliveries
  (event_id, recipient_user_id, channel, status, attempts, created_at, updated_at,
   sent_at, delivered_at, opened_at, clicked_at, failed_at, last_error)
SELECT md5('e' || (i / 2))::uuid, md5('u' || (i::bigint * 7919) %% 200000)::uuid, channel, status,
       CASE WHEN status = 'pending' THEN 0 ELSE 1 END,
       created, created,
       CASE WHEN status IN ('sent', 'delivered', 'opened', 'clicked', 'bounced')
            THEN created + r3 * interval '3 seconds' END,
       CASE WHEN status IN ('delivered', 'opened', 'clicked', 'bounced')
            THEN created + interval '3 seconds' + r3 * interval '20 seconds' END,
       CASE WHEN status IN ('opened', 'clicked') THEN created + r3 * interval '6 hours' END,
       CASE WHEN status = 'clicked' THEN created + interval '6 hours' + r3 * interval '1 hour' END,
       CASE WHEN status IN ('failed', 'bounced') THEN created + r3 * interval '1 hour' END,
       CASE WHEN status IN ('failed', 'bounced') THEN 'provider error ' || (i %% 17) END
FROM (
  SELECT i, r3,
         now() - interval '90 days' + i::float8 / %(rows)s * interval '90 days' AS created,
         CASE WHEN r1 < 0.45 THEN 'email' WHEN r1 < 0.70 THEN 'push'
              WHEN r1 < 0.90 THEN 'in_app' ELSE 'sms' END AS channel,
         CASE WHEN r2 < 0.03 THEN 'cancelled' WHEN r2 < 0.07 THEN 'pending'
              WHEN r2 < 0.17 THEN 'sent' WHEN r2 < 0.54 THEN 'delivered'
              WHEN r2 < 0.74 THEN 'opened' WHEN r2 < 0.86 THEN 'clicked'
              WHEN r2 < 0.95 THEN 'failed' ELSE 'bounced' END AS status
  FROM (SELECT i, random() AS r1, random() AS r2, random() AS r3
        FROM generate_series(%(first)s, %(last)s - 1) AS i) AS raw
) AS generated
"""

PREFERENCES_SQL = """
INSERT INTO notify.notification_preferences
  (user_id, channel, phone_number, phone_verified, enabled, opted_out)
SELECT md5('u' || u)::uuid, 'sms', '+1555' || u, u % 10 < 7, u % 4 <> 0, u % 25 = 0
FROM generate_series(0, 99999) AS u
"""

# The same funnel as analytics_delivery_funnel, over every row: what a dashboard query
# without a usable window costs on this table.
FULL_SCAN_SQL = """
SELECT channel,
       count(*) FILTER (WHERE status <> 'cancelled'),
       count(*) FILTER (WHERE status IN ('sent', 'delivered', 'opened', 'clicked')),
       count(*) FILTER (WHERE status IN ('delivered', 'opened', 'clicked')),
       count(*) FILTER (WHERE status IN ('sent', 'delivered', 'opened', 'clicked')
                          AND (opened_at IS NOT NULL OR clicked_at IS NOT NULL)),
       count(*) FILTER (WHERE status IN ('sent', 'delivered', 'opened', 'clicked')
                          AND clicked_at IS NOT NULL),
       count(*) FILTER (WHERE status IN ('failed', 'bounced')),
       avg(round(date_part('epoch', sent_at - created_at) * 1e6)::bigint)
         FILTER (WHERE sent_at IS NOT NULL),
       avg(round(date_part('epoch', delivered_at - created_at) * 1e6)::bigint)
         FILTER (WHERE delivered_at IS NOT NULL)
FROM notify.notification_deliveries
GROUP BY channel
"""

# The event figures over every event and delivery, joined the plain way.
FULL_EVENT_SCAN_SQL = """
SELECT e.event_type, count(DISTINCT e.id), count(d.id), count(DISTINCT d.recipient_user_id),
       avg(round(date_part('epoch', d.sent_at - d.created_at) * 1e6)::bigint)
         FILTER (WHERE d.sent_at IS NOT NULL),
       count(*) FILTER (WHERE d.status IN ('sent', 'delivered', 'opened', 'clicked')
                          AND (d.opened_at IS NOT NULL OR d.clicked_at IS NOT NULL)),
       count(*) FILTER (WHERE d.status IN ('sent', 'delivered', 'opened', 'clicked')
                          AND d.clicked_at IS NOT NULL)
FROM notify.notification_events e
LEFT JOIN notify.notification_deliveries d ON d.event_id = e.id
GROUP BY e.event_type
"""
BASELINES = {"deliveries": FULL_SCAN_SQL, "events": FULL_EVENT_SCAN_SQL}

# name -> (call for a window, baseline it is compared with)
CALLS: dict[str, tuple[Callable[[str], str], str]] = {
    "channel_performance": (
        lambda w: f"get_notification_channel_performance('{w}')", "deliveries"),
    "event_performance": (lambda w: f"get_notification_event_performance('{w}')", "events"),
    "sms_notification_stats": (lambda w: f"get_sms_notification_stats('{w}')", "deliveries"),
    "overview (2 periods)": (lambda w: f"get_notification_overview('{w}')", "deliveries"),
    "timeline": (lambda w: f"get_notification_delivery_timeline('{w}', "
                 f"'{'hour' if w == '24 hours' else 'day'}')", "deliveries"),
    "recent_failed (50)": (lambda w: f"get_recent_failed_deliveries(50, '{w}')", "deliveries"),
}  # fmt: skip


# Indexes not backing a constraint, as created by the migrations: dropped for the bulk
# load and rebuilt afterwards from their own definitions, so the measured schema is the
# installed one (rebuilding is minutes faster than maintaining them row by row).
SECONDARY_INDEXES_SQL = """
SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
FROM pg_index i
WHERE i.indrelid IN ('notify.notification_deliveries'::regclass,
                     'notify.notification_events'::regclass)
  AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid)
"""
LOADED_TABLES = [
    "notification_events", "notification_deliveries", "notification_preferences",
    "delivery_funnel_rollup", "delivery_status_rollup",
]  # fmt: skip


def load(conn: psycopg.Connection[Any], rows: int) -> float:
    started = time.perf_counter()
    indexes = conn.execute(SECONDARY_INDEXES_SQL).fetchall()
    for name, _ in indexes:
        conn.execute(f"DROP INDEX {name}")
    # The generated rows are consistent by construction: skip per-row foreign key checks.
    conn.execute("SET session_replication_role = replica")
    conn.execute("SELECT setseed(0.42)")
    for first in range(0, rows, BATCH):
        bounds = {"first": first, "last": min(first + BATCH, rows), "rows": rows}
        conn.execute(EVENTS_SQL, bounds)
        conn.execute(DELIVERIES_SQL, bounds)
        print(f"  loaded {bounds['last']:,} deliveries", flush=True)
    conn.execute(PREFERENCES_SQL)
    conn.execute("RESET session_replication_role")
    # The load bypassed the triggers that keep the funnel sums (replica role), exactly
    # like a restore with --disable-triggers: recount them the documented way.
    conn.execute("SELECT notify.rebuild_delivery_funnel_rollup()")
    conn.execute("SELECT notify.rebuild_delivery_status_rollup()")  # 0011's counts, likewise
    conn.execute("SET maintenance_work_mem = '512MB'")
    for _, definition in indexes:
        conn.execute(definition)
    for table in LOADED_TABLES:
        conn.execute(f"VACUUM (ANALYZE) notify.{table}")
    return time.perf_counter() - started


def median_ms(conn: psycopg.Connection[Any], sql: str) -> float:
    conn.execute(sql).fetchall()  # warm
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        conn.execute(sql).fetchall()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def sizes(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute(
        "SELECT pg_size_pretty(pg_table_size('notify.notification_deliveries')), "
        "pg_size_pretty(pg_indexes_size('notify.notification_deliveries')), "
        "pg_size_pretty(pg_total_relation_size('notify.notification_events'))"
    ).fetchone()
    assert row is not None
    return f"deliveries heap {row[0]}, deliveries indexes {row[1]}, events total {row[2]}"


def plans(conn: psycopg.Connection[Any]) -> None:
    """Plans of the statements inside the 7-day channel performance (auto_explain sends
    them to this client as notices) and of the full-table aggregate."""
    notices: list[str] = []
    conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
    conn.execute("RESET ROLE")
    conn.execute("LOAD 'auto_explain'")
    for name, value in {
        "auto_explain.log_min_duration": "0",
        "auto_explain.log_analyze": "on",
        "auto_explain.log_buffers": "on",
        "auto_explain.log_timing": "on",
        "auto_explain.log_nested_statements": "on",
        "auto_explain.log_level": "notice",
    }.items():
        conn.execute(f"SET {name} = '{value}'")
    conn.execute("SET ROLE service_role")
    call, _ = CALLS["channel_performance"]
    conn.execute(f"SELECT * FROM notify.{call('7 days')}").fetchall()
    print("\n--- EXPLAIN (ANALYZE, BUFFERS) inside get_notification_channel_performance('7 days')")
    for notice in notices:
        if "notification_deliveries" in notice:
            print(notice)
    print("\n--- EXPLAIN (ANALYZE, BUFFERS) full-table aggregate")
    for (line,) in conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + FULL_SCAN_SQL):
        print(line)


# The write path the funnel triggers sit on, driven by pgbench with the triggers on and
# off in alternation: the first open of a delivered email (status and opened_at move,
# so the funnel sums do), a repeat open (only open_count moves: the trigger's WHEN
# clause skips it) and an emit (one event, an email and a push delivery inserted).
# Callbacks walk a shuffled list of deliveries through a sequence, so every first open
# really is a first open.
FUNNEL_TRIGGERS = ["delivery_funnel_tracked", "delivery_funnel_moved"]
# --write-triggers status: the same measurement for the status counts of 0011 (the funnel
# triggers then stay on in both arms).
STATUS_TRIGGERS = ["delivery_status_tracked", "delivery_status_moved"]
WRITE_TRANSACTIONS = 2_000  # per client and run
WRITE_SCRIPTS = {
    "first open (record_email_event)": (
        "SELECT notify.record_email_event(t.tracking_id, 'open') FROM bench_delivered t "
        "WHERE t.n = (SELECT nextval('bench_delivered_next'));\n"
    ),
    "repeat open (record_email_event)": (
        "SELECT notify.record_email_event(t.tracking_id, 'open') FROM bench_opened t "
        "WHERE t.n = (SELECT nextval('bench_opened_next'));\n"
    ),
    "emit (email + push deliveries)": (
        # one of the 1000 subscribers of bench.write (write_cost subscribes them)
        "\\set n random(1, 1000)\n"
        "SELECT notify.emit_notification_event('bench.write', '{}'::jsonb, "
        "md5(:n::text)::uuid, NULL, ARRAY['email', 'push']);\n"
    ),
}
SAMPLES_SQL = """
CREATE TABLE bench_{status} AS
SELECT row_number() OVER () AS n, tracking_id
FROM (SELECT tracking_id FROM notify.notification_deliveries
      WHERE channel = 'email' AND status = '{status}' ORDER BY random()) AS shuffled;
CREATE UNIQUE INDEX ON bench_{status} (n);
CREATE SEQUENCE bench_{status}_next;
"""


def pgbench_tps(server: ThrowawayPostgres, script: str, clients: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as file:
        file.write(script)
        file.flush()
        command = [
            str(find_bindir() / "pgbench"), "-n", "-M", "prepared", "-f", file.name,
            "-c", str(clients), "-j", str(clients), "-t", str(WRITE_TRANSACTIONS),
            "-h", server.host, "-p", str(server.port), "-U", SUPERUSER, "postgres",
        ]  # fmt: skip
        result = subprocess.run(command, check=True, capture_output=True, text=True)
    match = re.search(r"^tps = ([0-9.]+)", result.stdout, re.MULTILINE)
    assert match, result.stdout
    return float(match.group(1))


def write_cost(
    server: ThrowawayPostgres, conn: psycopg.Connection[Any], triggers: list[str]
) -> None:
    """Transactions per second of the write path with the funnel triggers on and off,
    alternated over three rounds; the triggers end on and the sums rebuilt."""
    conn.execute("RESET ROLE")
    for status in ("delivered", "opened"):
        conn.execute(SAMPLES_SQL.format(status=status))
    conn.execute(
        "INSERT INTO notify.notification_subscriptions (user_id, event_type) "
        "SELECT md5(g::text)::uuid, 'bench.write' FROM generate_series(1, 1000) g "
        "ON CONFLICT DO NOTHING"
    )
    print("\n| write path | clients | triggers off, tx/s | triggers on, tx/s | on / off |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, script in WRITE_SCRIPTS.items():
        for clients in (1, 4):
            rates: dict[bool, list[float]] = {True: [], False: []}
            for _ in range(RUNS):
                for enabled in (False, True):
                    verb = "ENABLE" if enabled else "DISABLE"
                    for trigger in triggers:
                        conn.execute(
                            f"ALTER TABLE notify.notification_deliveries {verb} TRIGGER {trigger}"
                        )
                    rates[enabled].append(pgbench_tps(server, script, clients))
            pairs = zip(rates[True], rates[False], strict=True)
            ratio = statistics.median(on / off for on, off in pairs)
            print(f"| {name} | {clients} | {statistics.median(rates[False]):,.0f} | "
                  f"{statistics.median(rates[True]):,.0f} | {ratio:.2f} |", flush=True)  # fmt: skip
    conn.execute("SELECT notify.rebuild_delivery_funnel_rollup()")


def run(rows: int, triggers: list[str] = FUNNEL_TRIGGERS) -> None:
    print(f"\n=== {rows:,} deliveries over 90 days ===", flush=True)
    with throwaway_postgres(settings=SERVER_SETTINGS) as server:
        migrate(server.dsn(), "notify")
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            print(f"load + vacuum analyze: {load(conn, rows):.0f} s; {sizes(conn)}", flush=True)
            conn.execute("SET ROLE service_role")
            full = {name: median_ms(conn, sql) for name, sql in BASELINES.items()}
            print(f"\nfull-table aggregates (baselines): {full['deliveries']:.1f} ms over "
                  f"deliveries, {full['events']:.1f} ms over events joined to "
                  "deliveries\n")  # fmt: skip
            print(f"| function | {' | '.join(WINDOWS)} |")
            print(f"| --- |{' --- |' * len(WINDOWS)}")
            for name, (call, baseline) in CALLS.items():
                cells = []
                for window in WINDOWS:
                    elapsed = median_ms(conn, f"SELECT * FROM notify.{call(window)}")
                    cells.append(f"{elapsed:.1f} ms ({elapsed / full[baseline]:.3f})")
                print(f"| {name} | {' | '.join(cells)} |", flush=True)
            print("\n(ratio) = time / the full-table aggregate over the same tables (events for "
                  "event_performance, deliveries otherwise), same server, same run")  # fmt: skip
            plans(conn)
            write_cost(server, conn, triggers)


def main() -> None:
    # A terminated run still stops and deletes its server (the context managers' exits).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows", type=int, action="append", help="deliveries to generate (repeatable)"
    )
    parser.add_argument("--write-triggers", choices=["funnel", "status"], default="funnel")
    args = parser.parse_args()
    triggers = STATUS_TRIGGERS if args.write_triggers == "status" else FUNNEL_TRIGGERS
    for rows in args.rows or [1_000_000, 10_000_000]:
        run(rows, triggers)


if __name__ == "__main__":
    main()
