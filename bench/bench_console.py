"""Console latency: pages and /metrics at 1M (or --rows) deliveries, as ratios to /healthz.

    .venv/bin/python -m bench.bench_console                  # 1M deliveries
    .venv/bin/python -m bench.bench_console --rows 10000000  # 10M (about 15 min to load)
    .venv/bin/python -m bench.bench_console --rows 100000 --jobs 1000000  # queue figures

Loads deliveries exactly like bench_analytics (90 days, realistic channel and status
mix), plus 200,000 (--jobs) jobs finished over the last 7 days and 10,000 pending, starts the
console in this process and times each URL (median of RUNS requests after a warm-up).
BASELINE: /healthz, the same HTTP stack and one ``SELECT 1`` round trip. Also the cost
of one live-update refresh (what the database does per second while a browser watches)
and of page 1,000 of /deliveries and /jobs against page 1 (keyset pagination), and what
queue_stats() (every row) costs next to get_queue_health (live rows plus a 24 h window).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from hashlib import md5
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg
import uvicorn

from bench.bench_analytics import SERVER_SETTINGS, load
from notify_sql.console import Settings, create_app
from notify_sql.console.app import overview_snapshot
from notify_sql.migrator import migrate
from notify_sql.throwaway import throwaway_postgres

RUNS = 15
PORT = 8791

JOBS_SQL = """
INSERT INTO notify.queue_jobs (job_type, status, attempts, created_at, updated_at, started_at,
                               completed_at, scheduled_for, metadata)
SELECT (ARRAY['send_notification', 'generate_daily_brief', 'sync'])[1 + i %% 3],
       CASE WHEN i %% 50 = 0 THEN 'failed' ELSE 'completed' END, 1,
       now() - (i::float8 / %(jobs)s) * interval '7 days', now(), now(),
       now() - (i::float8 / %(jobs)s) * interval '7 days', now(),
       jsonb_build_object('correlation_id', md5(i::text), 'correlationId', md5(i::text))
FROM generate_series(1, %(jobs)s) AS i;
INSERT INTO notify.queue_jobs (job_type, metadata)
SELECT 'send_notification', '{}' FROM generate_series(1, 10000);
"""


def once(client: httpx.Client, url: str) -> float:
    started = time.perf_counter()
    client.get(url).raise_for_status()
    return time.perf_counter() - started


def ratios(client: httpx.Client, url: str) -> list[float]:
    """RUNS ratios of ``url`` to a /healthz request made right before it (alternating,
    so a change of load on the shared machine hits both sides of each ratio)."""
    once(client, url)
    return [once(client, url) / once(client, "/healthz") for _ in range(RUNS)]


def spread(values: list[float]) -> str:
    quartiles = statistics.quantiles(values, n=4)
    return f"{statistics.median(values):.1f} ({quartiles[0]:.1f}-{quartiles[2]:.1f})"


def page_1000_cursor(conn: psycopg.Connection[Any]) -> tuple[str, str]:
    row = conn.execute(
        "SELECT created_at, id FROM notify.notification_deliveries "
        "ORDER BY created_at DESC, id DESC OFFSET 49950 LIMIT 1"
    ).fetchone()
    job = conn.execute(
        "SELECT id FROM notify.queue_jobs ORDER BY id DESC OFFSET 49950 LIMIT 1"
    ).fetchone()
    assert row is not None and job is not None
    return f"{row[0].isoformat()}~{row[1]}", str(job[0])


def sql_ratios(conn: psycopg.Connection[Any], query: str) -> list[float]:
    """RUNS ratios of ``query`` to a ``SELECT 1`` made right before it."""

    def once(statement: str) -> float:
        started = time.perf_counter()
        conn.execute(statement).fetchall()
        return time.perf_counter() - started

    once(query)
    return [once(query) / once("SELECT 1") for _ in range(RUNS)]


def migration_0011_cost(conn: psycopg.Connection[Any]) -> dict[str, float]:
    """What migration 0011's steps cost on this table, as ratios to 0005's funnel rebuild
    (the documented cost of the previous such upgrade), one run each."""
    steps = {
        "funnel rebuild (0005, the baseline)": "SELECT notify.rebuild_delivery_funnel_rollup()",
        "status counts backfill": "SELECT notify.rebuild_delivery_status_rollup()",
        "failed index build": "DROP INDEX notify.notification_deliveries_failed_idx; "
        "CREATE INDEX notification_deliveries_failed_idx "
        "ON notify.notification_deliveries ((coalesce(failed_at, updated_at)) DESC, id) "
        "WHERE status IN ('failed', 'bounced')",
        "correlation index build": "DROP INDEX notify.queue_jobs_correlation_id_idx; "
        "CREATE INDEX queue_jobs_correlation_id_idx "
        "ON notify.queue_jobs ((metadata ->> 'correlationId')) "
        "WHERE (metadata ->> 'correlationId') IS NOT NULL",
    }
    seconds: dict[str, float] = {}
    if conn.execute("SELECT to_regclass('notify.delivery_status_rollup')").fetchone() == (None,):
        return seconds  # a tree before 0011 (a baseline run)
    for name, statement in steps.items():
        started = time.perf_counter()
        conn.execute(statement)
        seconds[name] = time.perf_counter() - started
    conn.execute("VACUUM ANALYZE notify.delivery_funnel_rollup, notify.delivery_status_rollup")
    return seconds


def run(rows: int, jobs: int) -> None:
    with throwaway_postgres(settings=SERVER_SETTINGS) as server:
        dsn = server.dsn()
        migrate(dsn, "notify")
        with psycopg.connect(dsn, autocommit=True) as conn:
            print(f"load: {load(conn, rows):.0f} s", flush=True)
            finished, pending = JOBS_SQL.split(";\n")[:2]  # parameters: one statement a call
            conn.execute(finished, {"jobs": jobs})
            conn.execute(pending)
            upgrade = migration_0011_cost(conn)
            conn.execute("VACUUM ANALYZE notify.queue_jobs")
            delivery_cursor, job_cursor = page_1000_cursor(conn)
            started = time.perf_counter()
            for _ in range(RUNS):
                overview_snapshot(conn, "notify")
            refresh = (time.perf_counter() - started) / RUNS
            select_one = time.perf_counter()
            for _ in range(RUNS):
                conn.execute("SELECT 1").fetchone()
            select_one = (time.perf_counter() - select_one) / RUNS
            queue_figures = {
                name: spread(sql_ratios(conn, f"SELECT * FROM notify.{call}"))
                for name, call in (
                    ("queue_stats()", "queue_stats()"),
                    ("get_queue_health()", "get_queue_health()"),
                    ("get_delivery_status_counts('24 hours')", "get_delivery_status_counts()"),
                    ("get_recent_failed_deliveries(10, '24 hours')",
                     "get_recent_failed_deliveries(10, '24 hours')"),
                )
                if conn.execute("SELECT to_regproc(%s)", ("notify." + call.split("(")[0],))
                .fetchone() != (None,)
            }  # fmt: skip
        config = uvicorn.Config(
            create_app(Settings(dsn)), host="127.0.0.1", port=PORT, log_level="warning"
        )
        console = uvicorn.Server(config)
        thread = threading.Thread(target=console.run, daemon=True)
        thread.start()
        while not console.started:
            time.sleep(0.05)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{PORT}", timeout=120) as client:
                urls = {
                    "/ (overview)": "/",
                    "/metrics": "/metrics",
                    "/deliveries page 1": "/deliveries",
                    "/deliveries page 1000": "/deliveries?"
                    + urlencode({"before": delivery_cursor}),
                    "/deliveries?channel=sms page 1": "/deliveries?channel=sms",
                    "/jobs page 1": "/jobs",
                    "/jobs page 1000": "/jobs?" + urlencode({"before": job_cursor}),
                    "/jobs?status=failed page 1": "/jobs?status=failed",
                    "/trace/<id> (no match)": "/trace/" + "c" * 32,
                    "/trace/<id> (one job)": "/trace/" + md5(b"7").hexdigest(),
                }
                print(f"\n{rows:,} deliveries, {jobs + 10000:,} jobs; "
                      f"ratio to /healthz (median of {RUNS})")  # fmt: skip
                print("| URL | ratio to /healthz: median (quartiles) |\n| --- | --- |")
                for name, url in urls.items():
                    print(f"| {name} | {spread(ratios(client, url))} |", flush=True)
        finally:
            console.should_exit = True
            thread.join(timeout=30)
        print(
            f"\none live refresh (get_queue_health + get_queue_throughput): "
            f"{refresh / select_one:.0f}x a SELECT 1 round trip"
        )
        base_step = next(iter(upgrade.values()), 1.0)
        print(
            "\n| migration 0011 step | seconds | ratio to the funnel rebuild |\n| --- | --- | --- |"
        )
        for name, elapsed in upgrade.items():
            print(f"| {name} | {elapsed:.1f} | {elapsed / base_step:.2f} |")
        print("\n| SQL call | ratio to SELECT 1: median (quartiles) |\n| --- | --- |")
        for name, figure in queue_figures.items():
            print(f"| {name} | {figure} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=200_000, help="finished jobs (7 days)")
    args = parser.parse_args()
    run(args.rows, args.jobs)


if __name__ == "__main__":
    main()
