"""The delivery state model as installed: one ranking, one vocabulary, the contract's
minimal inserts, the append-only callback log and the correlation-id trace."""

from __future__ import annotations

from itertools import pairwise
from typing import Any
from uuid import uuid4

import psycopg
import pytest

from notify_sql.errors import InvalidArgument
from notify_sql.wrappers import AsyncDeliveries, Deliveries
from tests.helpers.deliveries import (
    DELIVERY_RANKING,
    TWILIO_RANKING,
    TWILIO_TO_DELIVERY,
    apply_delivery_status,
    make_delivery,
    make_sms,
    one,
    subscriber,
)


def test_rankings_follow_the_contract(db: psycopg.Connection[Any]) -> None:
    delivery_ranks = [
        one(db, "SELECT notify.delivery_status_rank(%s)", status)[0] for status in DELIVERY_RANKING
    ]
    twilio_ranks = [
        one(db, "SELECT notify.twilio_status_rank(%s)", status)[0] for status in TWILIO_RANKING
    ]
    assert delivery_ranks == sorted(delivery_ranks) == list(range(1, 9))
    assert twilio_ranks == sorted(twilio_ranks) == list(range(1, 11))
    for unknown in ("queued", "read", "", None):
        assert one(db, "SELECT notify.delivery_status_rank(%s::text)", unknown) == (None,)
    for unknown in ("receiving", "received", "pending", None):
        assert one(db, "SELECT notify.twilio_status_rank(%s::text)", unknown) == (None,)


def test_twilio_mapping_is_the_contract_and_monotone(db: psycopg.Connection[Any]) -> None:
    mapped = {
        status: one(db, "SELECT notify.twilio_delivery_status(%s)", status)[0]
        for status in TWILIO_RANKING
    }
    assert mapped == TWILIO_TO_DELIVERY
    ranks = [DELIVERY_RANKING.index(mapped[status]) for status in TWILIO_RANKING]
    assert all(low <= high for low, high in pairwise(ranks))


@pytest.mark.parametrize("table", ["notification_deliveries", "sms_messages"])
def test_status_columns_accept_exactly_the_ranked_vocabulary(
    db: psycopg.Connection[Any], table: str
) -> None:
    row_id = make_sms(db, make_delivery(db)[0]) if table == "sms_messages" else make_delivery(db)[0]
    for status in DELIVERY_RANKING:
        db.execute(f"UPDATE notify.{table} SET status = %s WHERE id = %s", (status, row_id))
    for foreign in ("queued", "undelivered", "read", "Delivered"):
        with pytest.raises(psycopg.errors.CheckViolation):
            db.execute(f"UPDATE notify.{table} SET status = %s WHERE id = %s", (foreign, row_id))


def test_minimal_inserts_of_the_contract_work(service_db: psycopg.Connection[Any]) -> None:
    delivery = one(
        service_db,
        "INSERT INTO notify.notification_deliveries (recipient_user_id, channel) "
        "VALUES (%s, 'email') RETURNING status, attempts, max_attempts, tracking_id",
        uuid4(),
    )
    assert delivery[:3] == ("pending", 0, 3)
    assert len(delivery[3]) == 32
    sms = one(
        service_db,
        "INSERT INTO notify.sms_messages (user_id, phone_number, message_content) "
        "VALUES (%s, '+15550100', 'hi') RETURNING status, priority, attempt_count",
        uuid4(),
    )
    assert sms == ("pending", "normal", 0)


def test_the_callback_log_is_append_only(
    service_db: psycopg.Connection[Any],
) -> None:
    Deliveries(service_db).record_email_event("unknown-id", "open")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        service_db.execute("UPDATE notify.provider_callbacks SET changed = true")
    service_db.execute("DELETE FROM notify.provider_callbacks")  # retention stays possible


def test_one_correlation_id_traces_event_deliveries_jobs_and_callbacks(
    service_db: psycopg.Connection[Any],
) -> None:
    deliveries = Deliveries(service_db)
    deliveries.emit_notification_event(
        "x",
        {},
        target_user_id=subscriber(service_db),
        channels=["email", "sms"],
        correlation_id="trace-1",
    )
    deliveries.emit_notification_event(
        "x", {}, target_user_id=subscriber(service_db), correlation_id="other"
    )
    tracking_id = one(
        service_db,
        "SELECT tracking_id FROM notify.notification_deliveries "
        "WHERE correlation_id = 'trace-1' AND channel = 'email'",
    )[0]
    deliveries.record_email_event(tracking_id, "open")
    trace = deliveries.get_notification_trace("trace-1")
    kinds = sorted(str(entry.kind) for entry in trace)
    assert kinds == ["callback", "delivery", "delivery", "event", "job", "job", "log"]
    times = [entry.at for entry in trace if entry.at is not None]
    assert len(times) == len(trace) and times == sorted(times)
    callback = next(entry for entry in trace if entry.kind == "callback")
    assert callback.detail["changed"] is True
    with pytest.raises(InvalidArgument) as raised:
        deliveries.get_notification_trace("")
    assert raised.value.parameter == "p_correlation_id"


def test_the_worker_reports_through_the_same_rules(service_db: psycopg.Connection[Any]) -> None:
    deliveries = Deliveries(service_db)
    delivery_id, tracking_id = make_delivery(service_db, "email")
    sent = apply_delivery_status(service_db, delivery_id, "sent")
    assert sent is not None and sent.changed
    deliveries.record_email_event(tracking_id, "open")
    late = apply_delivery_status(service_db, delivery_id, "failed", error="smtp timeout")
    assert late is not None and late.changed  # failed_at and last_error recorded ...
    assert one(
        service_db,
        "SELECT status, last_error FROM notify.notification_deliveries WHERE id = %s",
        delivery_id,
    ) == ("opened", "smtp timeout")  # ... but the status never moves down
    repeat = apply_delivery_status(service_db, delivery_id, "failed", error="smtp timeout")
    assert repeat is not None and not repeat.changed
    assert apply_delivery_status(service_db, uuid4(), "sent") is None
    with pytest.raises(InvalidArgument) as raised:
        apply_delivery_status(service_db, delivery_id, "queued")
    assert raised.value.parameter == "p_status"


async def test_async_worker_report(dsn: str, service_db: psycopg.Connection[Any]) -> None:
    delivery_id, _ = make_delivery(service_db, "push")
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SET ROLE service_role")
        change = apply_delivery_status(service_db, delivery_id, "delivered")
        assert change is not None
        trace = await AsyncDeliveries(conn).get_notification_trace(change.correlation_id)
    assert [entry.kind for entry in trace] == ["delivery"]
    assert trace[0].detail["status"] == "delivered"


def test_one_definition_of_the_channels(service_db: psycopg.Connection[Any]) -> None:
    """The CHECK constraints and the functions read notification_channels() (0010)."""
    checks = service_db.execute(
        "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conname LIKE '%channel_check' AND connamespace = 'notify'::regnamespace "
        "ORDER BY 1"
    ).fetchall()
    tables = ["notify.notification_deliveries", "notify.notification_preferences"]
    assert [table for table, _ in checks] == tables
    assert all("notification_channels()" in definition for _, definition in checks)
    channels = one(service_db, "SELECT notify.notification_channels()")[0]
    assert channels == ["email", "sms", "push", "in_app"]
    with pytest.raises(InvalidArgument, match="must be one of email, sms, push, in_app") as raised:
        Deliveries(service_db).opt_out_user_channel(uuid4(), "fax", None)
    assert raised.value.parameter == "p_channel"
    with pytest.raises(psycopg.errors.CheckViolation):
        make_delivery(service_db, "fax")
