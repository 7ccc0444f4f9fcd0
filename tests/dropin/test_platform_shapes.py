"""Every call shape of the seed platform's apps (tests/dropin/shapes.py), made the way
PostgREST makes it (function chosen by name and argument keys, JSON values converted to
the declared types, named arguments, as service_role) on a `--schema public` install,
checking the result fields the caller reads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from tests.dropin.shapes import SHAPES, Shape
from tests.helpers.postgrest import rpc

Conn = psycopg.Connection[Any]
NOW = datetime.now(UTC)


def _insert(conn: Conn, query: str, *params: object) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def _delivery(conn: Conn, status: str = "pending", channel: str = "sms") -> UUID:
    event = _insert(conn, "INSERT INTO public.notification_events (event_type) "
                          "VALUES ('task.due') RETURNING id")  # fmt: skip
    delivery: UUID = _insert(
        conn,
        "INSERT INTO public.notification_deliveries (event_id, recipient_user_id, channel, "
        "channel_identifier, status, last_error) VALUES (%s, %s, %s, 'a@example.com', %s, "
        "'smtp 550') RETURNING id",
        event, uuid4(), channel, status,
    )  # fmt: skip
    return delivery


def _claimed_job(conn: Conn) -> tuple[UUID, UUID]:
    job_id = rpc(conn, "add_queue_job",
                 {"p_user_id": uuid4(), "p_job_type": "generate_daily_brief",
                  "p_metadata": {}})[0]["add_queue_job"]  # fmt: skip
    (claimed,) = rpc(conn, "claim_pending_jobs",
                     {"p_job_types": ["generate_daily_brief"], "p_batch_size": 1})  # fmt: skip
    assert claimed["id"] == job_id
    return job_id, claimed["processing_token"]


def _sms_update(conn: Conn) -> dict[str, Any]:
    delivery = _delivery(conn)
    message = _insert(
        conn,
        "INSERT INTO public.sms_messages (user_id, phone_number, message_content, "
        "notification_delivery_id, twilio_sid) VALUES (%s, '+15550100', 'hi', %s, 'SMx1') "
        "RETURNING id",
        uuid4(), delivery,
    )  # fmt: skip
    return {"p_message_id": message, "p_twilio_sid": "SMx1", "p_twilio_status": "delivered",
            "p_mapped_status": "delivered", "p_error_code": 30003,
            "p_error_message": "Unreachable"}  # fmt: skip


def _emit(conn: Conn) -> dict[str, Any]:
    target = uuid4()
    conn.execute("INSERT INTO public.notification_subscriptions (user_id, event_type) "
                 "VALUES (%s, 'brief.completed')", (target,))  # fmt: skip
    return {"p_event_type": "brief.completed", "p_event_source": "worker_job",
            "p_actor_user_id": uuid4(), "p_target_user_id": target,
            "p_payload": {"briefId": "b1"}, "p_metadata": {"correlationId": str(uuid4())},
            "p_scheduled_for": NOW.isoformat()}  # fmt: skip


def _analytics(conn: Conn) -> dict[str, Any]:
    _delivery(conn, "delivered", "email")
    _delivery(conn, "failed", "email")
    conn.execute("UPDATE public.notification_deliveries SET sent_at = created_at")
    return {"p_interval": "7 days", "p_granularity": "day", "p_offset": "7 days",
            "p_limit": 100}  # fmt: skip


def _metrics(conn: Conn) -> dict[str, Any]:
    user = uuid4()
    for metric_type, value in (("sent_count", 2), ("delivered_count", 1)):
        rpc(conn, "record_sms_metric",
            {"p_metric_date": date.today().isoformat(), "p_metric_hour": None,
             "p_user_id": user, "p_metric_type": metric_type, "p_metric_value": value,
             "p_metadata": {}})  # fmt: skip
    rpc(conn, "refresh_sms_metrics_daily", {})
    return {"p_metric_date": date.today().isoformat(), "p_metric_hour": 9, "p_user_id": user,
            "p_metric_type": "sent_count", "p_metric_value": 1, "p_metadata": {"k": 1},
            "p_start_date": (date.today() - timedelta(days=7)).isoformat(),
            "p_end_date": date.today().isoformat(), "p_days": 30}  # fmt: skip


def _queue(conn: Conn) -> dict[str, Any]:
    user = uuid4()
    job = rpc(conn, "add_queue_job",
              {"p_user_id": user, "p_job_type": "generate_daily_brief",
               "p_metadata": {"briefDate": "2026-01-01"}})[0]["add_queue_job"]  # fmt: skip
    return {"p_user_id": user, "p_job_type": "generate_daily_brief",
            "p_metadata": {"briefDate": "2026-01-01"}, "p_priority": 10,
            "p_scheduled_for": NOW.isoformat(), "p_dedup_key": f"brief-{user}",
            "p_metadata_filter": {"briefDate": "2026-01-01"},
            "p_allowed_statuses": ["pending", "processing"], "p_brief_date": "2026-01-01",
            "p_exclude_job_id": uuid4(), "p_retention_days": 30, "p_batch_size": 5,
            "p_job_types": ["generate_daily_brief"], "_job": job}  # fmt: skip


def _job_outcome(conn: Conn) -> dict[str, Any]:
    job_id, token = _claimed_job(conn)
    return {"p_job_id": job_id, "p_processing_token": token, "p_result": {"ok": True},
            "p_error_message": "boom", "p_retry": True}  # fmt: skip


def _sms(conn: Conn) -> dict[str, Any]:
    return {"p_user_id": uuid4(), "p_phone_number": "+15550100", "p_message": "Welcome!",
            "p_priority": "normal", "p_scheduled_for": NOW.isoformat(),
            "p_metadata": {"type": "welcome"}, "p_increment": 1, "p_default_limit": 10,
            "p_delivery_id": _delivery(conn),
            "p_destination_url": "https://build-os.com/projects/1"}  # fmt: skip


def _email(conn: Conn) -> dict[str, Any]:
    return {"p_email": " User@Example.com ", "p_scope": "lifecycle", "p_reason": "unsubscribe",
            "p_source": "email_link", "p_metadata": {"tracking_id": "t1"}}  # fmt: skip


# Per function: the setup that makes its call meaningful, returning every key any of its
# shapes sends (each shape takes its own subset).
SETUP: dict[str, Callable[[Conn], dict[str, Any]]] = {
    "update_sms_status_atomic": _sms_update,
    "add_queue_job": _queue,
    "claim_pending_jobs": _queue,
    "complete_queue_job": _job_outcome,
    "fail_queue_job": _job_outcome,
    "cancel_jobs_atomic": _queue,
    "cancel_brief_jobs_for_date": _queue,
    "delete_old_completed_queue_jobs": _queue,
    "emit_notification_event": _emit,
    "get_notification_delivery_timeline": _analytics,
    "get_notification_channel_performance": _analytics,
    "get_notification_event_performance": _analytics,
    "get_sms_notification_stats": _analytics,
    "get_notification_overview_metrics": _analytics,
    "get_notification_failed_deliveries": _analytics,
    "get_notification_active_subscriptions": _emit,
    "queue_sms_message": _sms,
    "check_and_increment_sms_daily_limit": _sms,
    "create_tracking_link": _sms,
    "record_sms_metric": _metrics,
    "refresh_sms_metrics_daily": _metrics,
    "get_sms_daily_metrics": _metrics,
    "get_user_sms_metrics": _metrics,
    "upsert_email_suppression": _email,
    "is_email_suppressed": _email,
}
# void functions: no row. Every other call's setup guarantees at least one row.
EMPTY_ALLOWED = {"record_sms_metric", "refresh_sms_metrics_daily"}


def test_every_shape_has_a_setup() -> None:
    assert {shape.function for shape in SHAPES} == set(SETUP)


@pytest.mark.parametrize(
    "shape", SHAPES, ids=[f"{s.function}({','.join(k[2:] for k in s.keys)})" for s in SHAPES]
)
def test_call_shape(public_db: Conn, shape: Shape) -> None:
    values = SETUP[shape.function](public_db)
    rows = rpc(public_db, shape.function, {key: values[key] for key in shape.keys})
    if shape.function in EMPTY_ALLOWED:
        assert rows == []
        return
    assert rows, f"{shape.function} returned no row"
    for row in rows:
        assert set(shape.reads) <= set(row), set(shape.reads) - set(row)
    if shape.reads == (shape.function,):
        assert rows[0][shape.function] is not None
