"""What the operator views read: every SQL call of ``notify-sql stats`` and the console.

Each figure comes from one SQL function (``sql/functions/operate/`` and the analytics
functions); this module only calls them and turns rows into plain dicts (JSON-ready:
intervals become seconds, timestamps ISO strings, UUIDs text), so the command line
and the console format the very same data.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

Record = dict[str, Any]


def plain(value: Any) -> Any:
    """A JSON-ready copy of a value read from the database."""
    if isinstance(value, timedelta):
        return round(value.total_seconds(), 3)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return float(value) if isinstance(value, Decimal) else str(value)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def _call(conn: psycopg.Connection[Any], schema: str, function: str, *args: Any) -> list[Record]:
    query = sql.SQL("SELECT * FROM {}.{}({})").format(
        sql.Identifier(schema),
        sql.Identifier(function),
        sql.SQL(", ").join(sql.Placeholder() for _ in args),
    )
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, args)
        return [{key: plain(value) for key, value in row.items()} for row in cur.fetchall()]


def queue_health(
    conn: psycopg.Connection[Any], schema: str, stall_timeout: timedelta = timedelta(minutes=5)
) -> list[Record]:
    return _call(conn, schema, "get_queue_health", stall_timeout)


def limits(conn: psycopg.Connection[Any], schema: str) -> list[Record]:
    """Each limit key's limit, pause, tokens now, backlog, running jobs and starts per
    second over about the last minute (queue_limit_status, issue 16)."""
    return _call(conn, schema, "queue_limit_status")


def throughput(conn: psycopg.Connection[Any], schema: str) -> list[Record]:
    return _call(conn, schema, "get_queue_throughput", timedelta(hours=1))


def funnel(conn: psycopg.Connection[Any], schema: str, interval: str) -> list[Record]:
    return _call(conn, schema, "get_notification_channel_performance", interval)


def funnel_in_slices(conn: psycopg.Connection[Any], schema: str, interval: str) -> list[Record]:
    """The funnel per channel over ``interval`` rounded up to whole 15-minute slices,
    flat in the table's size (get_channel_funnel_in_slices)."""
    return _call(conn, schema, "get_channel_funnel_in_slices", interval)


def delivery_status_counts(
    conn: psycopg.Connection[Any], schema: str, interval: str = "24 hours"
) -> list[Record]:
    return _call(conn, schema, "get_delivery_status_counts", interval)


def recent_failures(conn: psycopg.Connection[Any], schema: str, limit: int = 10) -> list[Record]:
    return _call(conn, schema, "get_recent_failed_deliveries", limit, "24 hours")


def trace(conn: psycopg.Connection[Any], schema: str, correlation_id: str) -> list[Record]:
    return _call(conn, schema, "get_notification_trace", correlation_id)


def totals(health: list[Record]) -> dict[str, int]:
    """Jobs per status over every job type (the overview's queue-* figures)."""
    counts = dict.fromkeys(("pending", "processing", "completed", "failed", "cancelled"), 0)
    for row in health:
        counts[row["status"]] = counts.get(row["status"], 0) + int(row["job_count"])
    counts["stalled"] = sum(int(row["stalled_jobs"]) for row in health)
    counts["failed_last_hour"] = sum(int(row["failed_last_hour"]) for row in health)
    return counts


def age(seconds: float | None) -> str:
    """An age for people: seconds, minutes or hours ("-" for none)."""
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def oldest_pending_age(health: list[Record]) -> float | None:
    ages = [row["oldest_pending_age"] for row in health if row["oldest_pending_age"] is not None]
    return max(ages) if ages else None


def cancel_job(conn: psycopg.Connection[Any], schema: str, job_id: UUID) -> bool:
    """Cancels a pending or processing job (its worker's token is fenced out)."""
    query = sql.SQL("SELECT {}.cancel_job_with_reason(%s, %s, true)").format(sql.Identifier(schema))
    row = conn.execute(query, (job_id, "cancelled from the console")).fetchone()
    return bool(row and row[0])


def retry_job(conn: psycopg.Connection[Any], schema: str, job_id: UUID) -> bool:
    """Puts a failed job back to pending, same id (retry_queue_job: attempts kept, one
    more run at least); False when it is not failed."""
    query = sql.SQL("SELECT {}.retry_queue_job(%s)").format(sql.Identifier(schema))
    row = conn.execute(query, (job_id,)).fetchone()
    return bool(row and row[0])


def _named_call(
    conn: psycopg.Connection[Any], schema: str, function: str, args: dict[str, Any]
) -> list[Record]:
    query = sql.SQL("SELECT * FROM {}.{}({})").format(
        sql.Identifier(schema),
        sql.Identifier(function),
        sql.SQL(", ").join(
            sql.SQL("{} => {}").format(sql.Identifier(name), sql.Placeholder(name)) for name in args
        ),
    )
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, args)
        return [{key: plain(value) for key, value in row.items()} for row in cur.fetchall()]


def list_jobs(conn: psycopg.Connection[Any], schema: str, **filters: Any) -> list[Record]:
    """``list_queue_jobs`` with the given ``p_*`` arguments (None ones left out)."""
    args = {f"p_{name}": value for name, value in filters.items() if value is not None}
    return _named_call(conn, schema, "list_queue_jobs", args)


def list_deliveries(conn: psycopg.Connection[Any], schema: str, **filters: Any) -> list[Record]:
    """``list_notification_deliveries`` with the given ``p_*`` arguments."""
    args = {f"p_{name}": value for name, value in filters.items() if value is not None}
    return _named_call(conn, schema, "list_notification_deliveries", args)
