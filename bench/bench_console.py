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
SELECT (ARRAY['send_notification', 'generate_daily_brief', 'sync'])[1 + i % 3],
       CASE WHEN i % 50 = 0 THEN 'failed' ELSE 'completed' END, 1,
       now() - (i::float8 / %(jobs)s) * interval '7 days', now(), now(),
       now() - (i::float8 / %(jobs)s) * interval '7 days', now(),
       jsonb_build_object('correlation_id', md5(i::text), 'correlationId', md5(i::text))
FROM generate_series(1, %(jobs)s) AS i;
INSERT INTO notify.queue_jobs (job_type, metadata)
SELECT 'send_notification', '{}' FROM generate_series(1, 10000);
"""


def timed(client: httpx.Client, url: str) -> float:
    client.get(url).raise_for_status()
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        client.get(url).raise_for_status()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


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


def sql_ratio(conn: psycopg.Connection[Any], query: str, select_one: float) -> float:
    conn.execute(query).fetchall()
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        conn.execute(query).fetchall()
        times.append(time.perf_counter() - started)
    return statistics.median(times) / select_one


def run(rows: int, jobs: int) -> None:
    with throwaway_postgres(settings=SERVER_SETTINGS) as server:
        dsn = server.dsn()
        migrate(dsn, "notify")
        with psycopg.connect(dsn, autocommit=True) as conn:
            print(f"load: {load(conn, rows):.0f} s", flush=True)
            conn.execute(JOBS_SQL, {"jobs": jobs})
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
                name: sql_ratio(conn, f"SELECT * FROM notify.{call}", select_one)
                for name, call in (
                    ("queue_stats()", "queue_stats()"),
                    ("get_queue_health()", "get_queue_health()"),
                    ("get_delivery_status_counts('24 hours')", "get_delivery_status_counts()"),
                    ("get_recent_failed_deliveries(10, '24 hours')",
                     "get_recent_failed_deliveries(10, '24 hours')"),
                )
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
                base = timed(client, "/healthz")
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
                print("| URL | ratio to /healthz |\n| --- | --- |")
                for name, url in urls.items():
                    print(f"| {name} | {timed(client, url) / base:.1f} |", flush=True)
        finally:
            console.should_exit = True
            thread.join(timeout=30)
        print(
            f"\none live refresh (get_queue_health + get_queue_throughput): "
            f"{refresh / select_one:.0f}x a SELECT 1 round trip"
        )
        print("\n| SQL call | ratio to SELECT 1 |\n| --- | --- |")
        for name, ratio in queue_figures.items():
            print(f"| {name} | {ratio:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=200_000, help="finished jobs (7 days)")
    args = parser.parse_args()
    run(args.rows, args.jobs)


if __name__ == "__main__":
    main()
