"""emit_notification_event: event, deliveries per enabled channel, send jobs, one
correlation id, one transaction."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg.types.json import Jsonb

from notify_sql.errors import InvalidArgument
from notify_sql.wrappers import AsyncDeliveries, Deliveries
from tests.helpers.deliveries import one, snapshot, subscriber

ALL_CHANNELS = ["email", "in_app", "push", "sms"]


@pytest.fixture
def deliveries(service_db: psycopg.Connection[Any]) -> Deliveries:
    return Deliveries(service_db)


def channels_of(conn: psycopg.Connection[Any], event_id: UUID | None) -> list[str]:
    return [
        channel
        for (channel,) in conn.execute(
            "SELECT channel FROM notify.notification_deliveries WHERE event_id = %s "
            "ORDER BY channel",
            (event_id,),
        )
    ]


def set_preference(
    conn: psycopg.Connection[Any], user_id: UUID, channel: str, **values: Any
) -> None:
    columns = ", ".join(["user_id", "channel", *values])
    placeholders = ", ".join(["%s"] * (2 + len(values)))
    conn.execute(
        f"INSERT INTO notify.notification_preferences ({columns}) VALUES ({placeholders})",
        (user_id, channel, *values.values()),
    )


def test_all_four_channels_without_preferences_and_one_correlation_id_throughout(
    service_db: psycopg.Connection[Any], deliveries: Deliveries
) -> None:
    user_id, actor_id = subscriber(service_db, "task.due_soon"), uuid4()
    event_id = deliveries.emit_notification_event(
        "task.due_soon",
        {"task": "Write report"},
        target_user_id=user_id,
        actor_user_id=actor_id,
        correlation_id="req-123",
    )
    assert channels_of(service_db, event_id) == ALL_CHANNELS
    assert one(
        service_db,
        "SELECT event_type, event_source, actor_user_id, target_user_id, payload, correlation_id "
        "FROM notify.notification_events WHERE id = %s",
        event_id,
    ) == ("task.due_soon", "api", actor_id, user_id, {"task": "Write report"}, "req-123")
    jobs = service_db.execute(
        "SELECT d.id, d.correlation_id, d.recipient_user_id, j.job_type, j.user_id, j.metadata "
        "FROM notify.notification_deliveries d "
        "JOIN notify.queue_jobs j ON j.metadata ->> 'delivery_id' = d.id::text "
        "WHERE d.event_id = %s",
        (event_id,),
    ).fetchall()
    assert len(jobs) == 4
    for delivery_id, correlation, recipient, job_type, job_user, metadata in jobs:
        assert (correlation, recipient, job_type, job_user) == (
            "req-123",
            user_id,
            "send_notification",
            user_id,
        )
        assert metadata["correlation_id"] == "req-123"
        assert metadata["delivery_id"] == str(delivery_id)
    assert one(service_db, "SELECT count(*) FROM notify.queue_jobs") == (4,)
    assert one(
        service_db,
        "SELECT correlation_id, event_id FROM notify.notification_logs",
    ) == ("req-123", event_id)


def test_a_correlation_id_is_generated_when_none_is_given(
    service_db: psycopg.Connection[Any], deliveries: Deliveries
) -> None:
    event_id = deliveries.emit_notification_event("x", {}, target_user_id=subscriber(service_db))
    correlations = {
        row[0]
        for row in service_db.execute(
            "SELECT correlation_id FROM notify.notification_events WHERE id = %(e)s "
            "UNION ALL SELECT correlation_id FROM notify.notification_deliveries "
            "WHERE event_id = %(e)s "
            "UNION ALL SELECT metadata ->> 'correlation_id' FROM notify.queue_jobs",
            {"e": event_id},
        )
    }
    assert len(correlations) == 1
    assert UUID(correlations.pop())


def test_disabled_and_opted_out_channels_get_no_delivery(
    service_db: psycopg.Connection[Any], deliveries: Deliveries
) -> None:
    user_id = subscriber(service_db)
    set_preference(service_db, user_id, "sms", enabled=False, phone_number="+15550199")
    set_preference(service_db, user_id, "email", opted_out=True)
    set_preference(service_db, user_id, "push", enabled=True)
    event_id = deliveries.emit_notification_event("x", {}, target_user_id=user_id)
    assert channels_of(service_db, event_id) == ["in_app", "push"]
    assert one(service_db, "SELECT count(*) FROM notify.queue_jobs") == (2,)


def test_an_enabled_sms_channel_carries_the_phone_number(
    service_db: psycopg.Connection[Any], deliveries: Deliveries
) -> None:
    user_id = subscriber(service_db)
    set_preference(service_db, user_id, "sms", phone_number="+15550142", phone_verified=True)
    event_id = deliveries.emit_notification_event("x", {}, target_user_id=user_id, channels=["sms"])
    assert one(
        service_db,
        "SELECT channel, channel_identifier FROM notify.notification_deliveries "
        "WHERE event_id = %s",
        event_id,
    ) == ("sms", "+15550142")


def test_a_stop_reply_stops_future_sms(
    service_db: psycopg.Connection[Any], deliveries: Deliveries
) -> None:
    """Twilio error 21610 on one message: the next event creates no SMS delivery."""
    user_id = subscriber(service_db)
    first = deliveries.emit_notification_event("x", {}, target_user_id=user_id, channels=["sms"])
    message_id = one(
        service_db,
        "INSERT INTO notify.sms_messages (user_id, phone_number, message_content, "
        "notification_delivery_id) SELECT %s, '+15550100', 'hi', id "
        "FROM notify.notification_deliveries WHERE event_id = %s RETURNING id",
        user_id,
        first,
    )[0]
    deliveries.update_sms_status_atomic(message_id, None, "failed", error_code=21610)[0]
    second = deliveries.emit_notification_event("x", {}, target_user_id=user_id)
    assert channels_of(service_db, second) == ["email", "in_app", "push"]


def test_opting_out_is_idempotent_and_keeps_the_first_reason(
    service_db: psycopg.Connection[Any], deliveries: Deliveries
) -> None:
    user_id = subscriber(service_db)
    assert deliveries.opt_out_user_channel(user_id, "push", reason="unsubscribe link")
    assert not deliveries.opt_out_user_channel(user_id, "push", reason="again")
    assert one(
        service_db,
        "SELECT opted_out, opt_out_reason FROM notify.notification_preferences "
        "WHERE user_id = %s AND channel = 'push'",
        user_id,
    ) == (True, "unsubscribe link")
    event_id = deliveries.emit_notification_event("x", {}, target_user_id=user_id)
    assert channels_of(service_db, event_id) == ["email", "in_app", "sms"]
    with pytest.raises(InvalidArgument) as raised:
        deliveries.opt_out_user_channel(user_id, "fax", None)
    assert raised.value.parameter == "p_channel"


def test_p_channels_restricts(service_db: psycopg.Connection[Any], deliveries: Deliveries) -> None:
    user_id = subscriber(service_db)
    set_preference(service_db, user_id, "push", enabled=False)
    event_id = deliveries.emit_notification_event(
        "x", {}, target_user_id=user_id, channels=["push", "email", "email"]
    )
    assert channels_of(service_db, event_id) == ["email"]


def test_no_subscriber_records_the_event_only(
    service_db: psycopg.Connection[Any], deliveries: Deliveries
) -> None:
    subscriber(service_db, "other.event")
    event_id = deliveries.emit_notification_event("system.notice", {"a": 1})
    assert channels_of(service_db, event_id) == []
    assert one(service_db, "SELECT count(*) FROM notify.queue_jobs") == (0,)


@pytest.mark.parametrize(
    ("arguments", "parameter"),
    [
        ({"event_type": ""}, "p_event_type"),
        ({"event_type": None}, "p_event_type"),
        ({"payload": None}, "p_payload"),
        ({"payload": [1, 2]}, "p_payload"),
        ({"payload": "text"}, "p_payload"),
        ({"channels": []}, "p_channels"),
        ({"channels": ["sms", "fax"]}, "p_channels"),
        ({"channels": ["sms", None]}, "p_channels"),
        ({"event_source": None}, "p_event_source"),
        ({"correlation_id": " "}, "p_correlation_id"),
        ({"payload": {"big": "x" * 70000}}, "p_payload"),
        ({"metadata": [1]}, "p_metadata"),
        ({"metadata": {"correlationId": "c" * 201}}, "p_metadata"),
        ({"metadata": {"blob": "x" * 70000}}, "p_metadata"),
        ({"scheduled_for": "infinity"}, "p_scheduled_for"),
    ],
)
def test_bad_input_raises_22023_and_writes_nothing(
    service_db: psycopg.Connection[Any], arguments: dict[str, Any], parameter: str
) -> None:
    call: dict[str, Any] = {
        "p_event_type": "x",
        "p_payload": {},
        "p_target_user_id": subscriber(service_db),
        **{f"p_{name}": value for name, value in arguments.items()},
    }
    for name in ("p_payload", "p_metadata"):
        if call.get(name) is not None:
            call[name] = Jsonb(call[name])
    before = snapshot(service_db)
    named = ", ".join(f"{name} => %({name})s" for name in call)
    with pytest.raises(psycopg.errors.InvalidParameterValue) as raised:
        service_db.execute(f"SELECT notify.emit_notification_event({named})", call)
    assert (raised.value.diag.message_primary or "").startswith(parameter)
    assert snapshot(service_db) == before


def test_wrapper_raises_invalid_argument(deliveries: Deliveries) -> None:
    with pytest.raises(InvalidArgument) as raised:
        deliveries.emit_notification_event("x", {}, channels=["fax"])
    assert raised.value.parameter == "p_channels"


def test_a_failing_job_insert_rolls_back_the_event_and_deliveries(
    db: psycopg.Connection[Any], deliveries: Deliveries
) -> None:
    db.execute(
        "CREATE FUNCTION notify.refuse_job() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'queue refused'; END $$"
    )
    db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON notify.queue_jobs "
        "FOR EACH ROW EXECUTE FUNCTION notify.refuse_job()"
    )
    user_id = subscriber(db)
    before = snapshot(db)
    with pytest.raises(psycopg.errors.RaiseException):
        deliveries.emit_notification_event("x", {}, target_user_id=user_id)
    assert snapshot(db) == before


async def test_async_wrapper(dsn: str, service_db: psycopg.Connection[Any]) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SET ROLE service_role")
        event_id = await AsyncDeliveries(conn).emit_notification_event(
            "x", {"k": "v"}, target_user_id=subscriber(service_db), channels=["in_app"]
        )
    assert channels_of(service_db, event_id) == ["in_app"]
