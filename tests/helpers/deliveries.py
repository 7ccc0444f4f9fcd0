"""Shared helpers for the delivery-tracking tests (no tests of its own)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import psycopg

from notify_sql.rpc import call_rows
from notify_sql.wrappers import Deliveries
from tests.helpers.concurrency import released_together

Conn = psycopg.Connection[Any]

# Every table a delivery-tracking RPC may write, the queue included.
WRITTEN_TABLES = (
    "notification_events",
    "notification_deliveries",
    "sms_messages",
    "notification_preferences",
    "notification_subscriptions",
    "sms_links",
    "provider_callbacks",
    "notification_logs",
    "queue_jobs",
)

# The contract's rankings and mapping, written out independently of the SQL so the
# tests check the functions against the specification, not against themselves.
TWILIO_RANKING = (
    "accepted",
    "scheduled",
    "queued",
    "sending",
    "sent",
    "canceled",
    "failed",
    "undelivered",
    "delivered",
    "read",
)
DELIVERY_RANKING = (
    "pending",
    "sent",
    "cancelled",
    "failed",
    "delivered",
    "bounced",
    "opened",
    "clicked",
)
TWILIO_TO_DELIVERY = {
    "accepted": "pending",
    "scheduled": "pending",
    "queued": "pending",
    "sending": "pending",
    "sent": "sent",
    "canceled": "cancelled",
    "failed": "failed",
    "undelivered": "failed",
    "delivered": "delivered",
    "read": "opened",
}
# Timestamps (column stems) that reaching a delivery status fills.
IMPLIED_STAGES = {
    "pending": set(),
    "sent": {"sent"},
    "cancelled": set(),
    "failed": {"failed"},
    "delivered": {"sent", "delivered"},
    "bounced": {"sent", "failed"},
    "opened": {"sent", "delivered", "opened"},
    "clicked": {"sent", "delivered", "opened", "clicked"},
}


def snapshot(conn: psycopg.Connection[Any]) -> dict[str, list[str]]:
    """Every row of every table the RPCs write, as text: equal snapshots mean nothing
    was inserted, updated or deleted."""
    return {
        table: [
            row[0] for row in conn.execute(f"SELECT t::text FROM notify.{table} t ORDER BY t::text")
        ]
        for table in WRITTEN_TABLES
    }


def make_delivery(conn: psycopg.Connection[Any], channel: str = "sms") -> tuple[UUID, str]:
    """A fresh delivery with only the required columns; returns (id, tracking_id)."""
    row = conn.execute(
        "INSERT INTO notify.notification_deliveries (recipient_user_id, channel) "
        "VALUES (%s, %s) RETURNING id, tracking_id",
        (uuid4(), channel),
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def make_sms(
    conn: psycopg.Connection[Any], delivery_id: UUID | None, twilio_sid: str | None = None
) -> UUID:
    """A fresh SMS row with only the required columns (plus delivery and sid)."""
    row = conn.execute(
        "INSERT INTO notify.sms_messages "
        "(user_id, phone_number, message_content, notification_delivery_id, twilio_sid) "
        "SELECT coalesce(d.recipient_user_id, gen_random_uuid()), '+15550100', 'hello', "
        "%(delivery)s, %(sid)s "
        "FROM (SELECT) AS one "
        "LEFT JOIN notify.notification_deliveries d ON d.id = %(delivery)s "
        "RETURNING id",
        {"delivery": delivery_id, "sid": twilio_sid},
    ).fetchone()
    assert row is not None
    message_id: UUID = row[0]
    return message_id


def subscriber(conn: psycopg.Connection[Any], event_type: str = "x", *more: str) -> UUID:
    """A new user actively subscribed to the event type(s): emit_notification_event
    delivers only to subscribers."""
    user_id = uuid4()
    conn.execute(
        "INSERT INTO notify.notification_subscriptions (user_id, event_type) "
        "SELECT %s, unnest(%s::text[])",
        (user_id, [event_type, *more]),
    )
    return user_id


def one(conn: psycopg.Connection[Any], query: str, *params: object) -> tuple[Any, ...]:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return tuple(row)


def run_concurrently(dsn: str, jobs: list[Callable[[Deliveries], None]]) -> None:
    """Runs each job in its own thread on its own service_role connection, all
    released at once; re-raises the first failure."""

    def on_connection(job: Callable[[Deliveries], None]) -> Callable[[Conn], None]:
        return lambda conn: job(Deliveries(conn))

    released_together(dsn, [on_connection(job) for job in jobs], role="service_role")


@dataclass(frozen=True)
class StatusChange:
    """A row of the internal ``apply_delivery_status`` (no wrapper: not public API)."""

    changed: bool
    correlation_id: str


def apply_delivery_status(
    conn: psycopg.Connection[Any], delivery_id: UUID, status: str, error: str | None = None
) -> StatusChange | None:
    args = {"p_delivery_id": delivery_id, "p_status": status, "p_error": error}
    rows = call_rows(conn, "apply_delivery_status", args, StatusChange)
    return rows[0] if rows else None
