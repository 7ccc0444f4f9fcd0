"""Each limit key's limit, backlog and current rate (issue 16) wherever operators look:
``notify-sql stats`` (table and --json), the console's "Rate limits" table, /metrics,
and the worker leader's upkeep log line. Every view is checked against
queue_limit_status() (itself checked against the tables in tests/queue)."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from decimal import Decimal
from typing import Any
from uuid import uuid4

import httpx
import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

from notify_sql.monitor import plain
from notify_sql.worker import ClaimedJob, JsonObject, Worker
from tests.operate.conftest import Console
from tests.operate.test_console_http import samples
from tests.operate.test_stats_command import stats

Conn = psycopg.Connection[Any]
NONE = "\u2013"  # how the console shows a missing figure


def limited_queue(db: Conn) -> None:
    """Three keys: throttled with a backlog and starts, capped with one running, paused."""
    db.execute("SELECT notify.set_queue_limit('twilio:+15550001', 2, NULL, 3)")
    db.execute("SELECT notify.set_queue_limit('tenant:42', NULL, 1)")
    jobs = [{"job_type": "t", "limit_key": "twilio:+15550001"}] * 6
    jobs += [{"job_type": "t", "limit_key": "tenant:42"}] * 2
    jobs += [{"job_type": "t", "limit_key": "email:example.com"}]
    db.execute("SELECT notify.add_queue_jobs(%s)", (Jsonb(jobs),))
    db.execute("SELECT notify.pause_queue_limit('email:example.com', 600)")
    db.execute("SELECT count(*) FROM notify.claim_pending_jobs('{t}', 10)")


def status(db: Conn) -> list[dict[str, Any]]:
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        rows = cur.execute("SELECT * FROM notify.queue_limit_status()").fetchall()
    return [{key: plain(value) for key, value in row.items()} for row in rows]


def without_clock(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows minus the figures that move with the clock between two reads."""
    return [{k: v for k, v in row.items() if k not in ("tokens", "current_rate")} for row in rows]


def test_stats_json_has_the_limits_of_queue_limit_status(dsn: str, db: Conn) -> None:
    limited_queue(db)
    result = stats(dsn, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)["limits"]
    expected = status(db)
    assert without_clock(report) == without_clock(expected)
    assert [r["limit_key"] for r in report] == [
        "email:example.com",
        "tenant:42",
        "twilio:+15550001",
    ]
    twilio = report[2]
    assert (twilio["max_per_second"], twilio["burst"], twilio["backlog"], twilio["running"]) == (
        2.0, 3, 3, 3,
    )  # fmt: skip
    assert twilio["current_rate"] == pytest.approx(3 / 60, abs=0.01)
    assert 0 <= twilio["tokens"] <= 3
    assert (report[1]["max_concurrent"], report[1]["running"], report[1]["backlog"]) == (1, 1, 1)
    assert report[0]["paused_until"] is not None


def test_stats_table_shows_each_key(dsn: str, db: Conn) -> None:
    limited_queue(db)
    result = stats(dsn)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = lines.index("rate limits (rate: starts per second over about the last minute)")
    assert lines[start + 1].split() == [
        "limit_key", "limit_per_s", "burst", "cap", "paused_until", "tokens", "backlog",
        "running", "rate",
    ]  # fmt: skip
    row = lines[start + 3].split()  # tenant:42
    assert (row[0], row[1], row[2], row[3], row[-3], row[-2]) == (
        "tenant:42",
        "-",
        "-",
        "1",
        "1",
        "1",
    )


def test_console_overview_shows_the_rate_limits_table(db: Conn, console: Console) -> None:
    limited_queue(db)
    html = httpx.get(console.url + "/").text
    assert "<h2>Rate limits" in html
    figures = dict(re.findall(r'data-metric="(limit-[a-z-]+:[^"]+)">([^<]*)<', html))
    for row in status(db):
        key = row["limit_key"]
        assert figures[f"limit-backlog:{key}"] == str(row["backlog"])
        assert figures[f"limit-running:{key}"] == str(row["running"])
        assert figures[f"limit-cap:{key}"] == (
            NONE if row["max_concurrent"] is None else str(row["max_concurrent"])
        )
    assert figures["limit-per-second:twilio:+15550001"] == "2.0"
    assert figures["limit-burst:twilio:+15550001"] == "3"
    assert figures["limit-paused-until:email:example.com"] != NONE
    assert float(figures["limit-rate:twilio:+15550001"]) == pytest.approx(3 / 60, abs=0.01)


def test_metrics_have_one_series_per_limit_key(db: Conn, console: Console) -> None:
    limited_queue(db)
    found = samples(httpx.get(console.url + "/metrics").text)
    for row in status(db):
        labels = (("limit_key", row["limit_key"]),)
        assert found[("notify_queue_limit_backlog", labels)] == row["backlog"]
        assert found[("notify_queue_limit_running", labels)] == row["running"]
        assert found[("notify_queue_limit_paused", labels)] == (row["paused_until"] is not None)
        cap = found.get(("notify_queue_limit_max_concurrent", labels))
        assert cap == (None if row["max_concurrent"] is None else float(row["max_concurrent"]))
    twilio = (("limit_key", "twilio:+15550001"),)
    assert found[("notify_queue_limit_max_per_second", twilio)] == 2
    assert found[("notify_queue_limit_burst", twilio)] == 3
    assert found[("notify_queue_limit_starts_per_second", twilio)] == pytest.approx(
        3 / 60, abs=0.01
    )
    assert 0 <= found[("notify_queue_limit_tokens", twilio)] <= 3


def test_the_monitor_role_reads_the_limits(dsn: str, db: Conn) -> None:
    limited_queue(db)
    role = f"console_{uuid4().hex[:12]}"
    db.execute(f"CREATE ROLE {role} LOGIN IN ROLE notify_sql_monitor")
    try:
        with psycopg.connect(make_conninfo(dsn, user=role), autocommit=True) as monitor:
            assert without_clock(status(monitor)) == without_clock(status(db))
    finally:
        db.execute(f"DROP OWNED BY {role}")
        db.execute(f"DROP ROLE {role}")


def test_the_upkeep_leader_logs_keys_held_back_and_paused(
    dsn: str, db: Conn, caplog: pytest.LogCaptureFixture
) -> None:
    limited_queue(db)
    db.execute("UPDATE notify.queue_limits SET max_per_second = %s", (Decimal("0.000001"),))

    def handler(job: ClaimedJob) -> JsonObject:
        return {}

    worker = Worker(dsn, ["other"], handler, poll_interval=0.1, upkeep_interval=0.1)
    caplog.set_level(logging.INFO, logger="notify_sql.worker")
    thread = threading.Thread(target=worker.run, kwargs={"install_signal_handler": False})
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while "upkeep limit_keys=" not in caplog.text:
            assert time.monotonic() < deadline, caplog.text
            time.sleep(0.05)
    finally:
        worker.stop()
        thread.join(timeout=30)
    # twilio: empty bucket and a backlog; tenant:42: cap full; email: paused.
    assert "upkeep limit_keys=3 held_back=3 paused=1 keyed_backlog=5" in caplog.text
