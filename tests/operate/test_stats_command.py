"""``notify-sql stats``: the queue and the 24-hour funnel, checked against the database's
own counts (plain SQL over the tables, independent of the functions under test)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg

from notify_sql.wrappers import Queue
from tests.helpers.queue import new_job

Conn = psycopg.Connection[Any]
ROOT = Path(__file__).resolve().parents[2]


def stats(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "notify_sql", "stats", "--dsn", dsn, *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def busy_queue(db: Conn) -> None:
    """Jobs of two types in every status, one processing job stalled."""
    queue = Queue(db)
    queue.add_queue_jobs([new_job("email", {"n": n}) for n in range(7)])
    queue.add_queue_jobs([new_job("sms", {"n": n}, max_attempts=1) for n in range(5)])
    emails = queue.claim_pending_jobs(["email"], batch_size=4)
    queue.complete_queue_jobs([j.id for j in emails[:2]], [j.processing_token for j in emails[:2]])
    sms = queue.claim_pending_jobs(["sms"], batch_size=3)
    queue.fail_queue_jobs(
        [j.id for j in sms[:2]], [j.processing_token for j in sms[:2]], ["x", "y"]
    )
    queue.cancel_job_with_reason(queue.add_queue_job(None, "sms", {}), "not needed")
    db.execute(
        "UPDATE notify.queue_jobs SET started_at = now() - interval '10 minutes' WHERE id = %s",
        (emails[2].id,),
    )
    queue.add_queue_job(None, "email", {})


def deliveries(db: Conn) -> None:
    statuses = [
        "pending",
        "sent",
        "delivered",
        "opened",
        "clicked",
        "failed",
        "bounced",
        "cancelled",
    ]
    for n, status in enumerate(statuses * 2):
        db.execute(
            "INSERT INTO notify.notification_deliveries (recipient_user_id, channel, status, "
            "sent_at, delivered_at, opened_at, clicked_at, failed_at) VALUES (%s, %s, %s, "
            "CASE WHEN %s IN ('sent','delivered','opened','clicked','bounced') THEN now() END, "
            "CASE WHEN %s IN ('delivered','opened','clicked') THEN now() END, "
            "CASE WHEN %s IN ('opened','clicked') THEN now() END, "
            "CASE WHEN %s = 'clicked' THEN now() END, "
            "CASE WHEN %s IN ('failed','bounced') THEN now() END)",
            (uuid4(), ("email", "sms")[n % 2], status, status, status, status, status, status),
        )


def test_stats_json_equals_the_database_counts(dsn: str, db: Conn) -> None:
    busy_queue(db)
    deliveries(db)
    result = stats(dsn, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)

    expected = {
        (t, s): (n, stalled, failed_hour)
        for t, s, n, stalled, failed_hour in db.execute(
            "SELECT job_type, status, count(*), "
            "count(*) FILTER (WHERE status = 'processing' AND "
            "  coalesce(heartbeat_at, started_at) < now() - interval '5 minutes'), "
            "count(*) FILTER (WHERE status = 'failed' AND "
            "  completed_at > now() - interval '1 hour') "
            "FROM notify.queue_jobs GROUP BY 1, 2"
        ).fetchall()
    }
    got = {
        (r["job_type"], r["status"]): (r["job_count"], r["stalled_jobs"], r["failed_last_hour"])
        for r in report["queue"]
    }
    assert got == expected
    assert got[("email", "processing")] == (2, 1, 0)
    assert got[("sms", "failed")] == (2, 0, 2)
    oldest = db.execute(
        "SELECT now() - min(scheduled_for) FROM notify.queue_jobs WHERE status = 'pending' "
        "AND job_type = 'email'"
    ).fetchone()
    assert oldest is not None
    pending = next(
        r for r in report["queue"] if (r["job_type"], r["status"]) == ("email", "pending")
    )
    assert abs(pending["oldest_pending_age"] - oldest[0] / timedelta(seconds=1)) < 5

    funnel = {
        channel: [total, sent, delivered, opened, clicked, failed]
        for channel, total, sent, delivered, opened, clicked, failed in db.execute(
            "SELECT channel, count(*) FILTER (WHERE status <> 'cancelled'), "
            "count(*) FILTER (WHERE status IN ('sent', 'delivered', 'opened', 'clicked')), "
            "count(*) FILTER (WHERE status IN ('delivered', 'opened', 'clicked')), "
            "count(*) FILTER (WHERE opened_at IS NOT NULL), "
            "count(*) FILTER (WHERE clicked_at IS NOT NULL), "
            "count(*) FILTER (WHERE status IN ('failed', 'bounced')) "
            "FROM notify.notification_deliveries GROUP BY 1"
        ).fetchall()
    }
    keys = ["total_sent", "sent", "delivered", "opened", "clicked", "failed"]
    for channel in ("email", "sms", "push", "in_app"):  # every channel is reported
        funnel.setdefault(channel, [0] * len(keys))
    assert {r["channel"]: [r[k] for k in keys] for r in report["funnel_24h"]} == funnel


def test_stats_table_for_people(dsn: str, db: Conn) -> None:
    busy_queue(db)
    result = stats(dsn)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "queue (finished jobs: last 24 h)"
    assert lines[1].split() == [
        "job_type", "status", "jobs", "oldest_pending", "oldest_heartbeat", "stalled", "failed_1h"
    ]  # fmt: skip
    assert any(line.split()[:3] == ["email", "processing", "2"] for line in lines)
    assert "delivery funnel, last 24 h" in lines


def test_stats_bad_dsn_is_one_line(dsn: str) -> None:
    result = stats("host=/nonexistent-dir dbname=x")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
