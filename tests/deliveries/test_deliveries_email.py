"""record_email_event: opens, clicks, bounces and complaints reach the delivery,
monotonically, keeping first times and counting repeats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest

from notify_sql.errors import InvalidArgument
from notify_sql.wrappers import AsyncDeliveries, Deliveries
from tests.helpers.deliveries import make_delivery, one, snapshot

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


STATE_NAMES = (
    "status",
    "sent",
    "delivered",
    "opened",
    "clicked",
    "failed",
    "opens",
    "clicks",
    "error",
)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def deliveries(service_db: psycopg.Connection[Any]) -> Deliveries:
    return Deliveries(service_db)


@pytest.fixture
def email(service_db: psycopg.Connection[Any]) -> tuple[UUID, str]:
    return make_delivery(service_db, "email")


def state(conn: psycopg.Connection[Any], delivery_id: UUID) -> dict[str, Any]:
    row = conn.execute(
        "SELECT status, sent_at, delivered_at, opened_at, clicked_at, failed_at, "
        "open_count, click_count, last_error "
        "FROM notify.notification_deliveries WHERE id = %s",
        (delivery_id,),
    ).fetchone()
    assert row is not None
    return dict(zip(STATE_NAMES, row, strict=True))


def test_first_open_is_kept_and_repeats_are_counted(
    service_db: psycopg.Connection[Any], deliveries: Deliveries, email: tuple[UUID, str]
) -> None:
    delivery_id, tracking_id = email
    assert deliveries.record_email_event(tracking_id, "delivered", occurred_at=at(0))
    assert deliveries.record_email_event(tracking_id, "open", occurred_at=at(5))
    assert deliveries.record_email_event(tracking_id, "open", occurred_at=at(9))
    # A late webhook for an even earlier open moves the first open back, never forward.
    assert deliveries.record_email_event(tracking_id, "open", occurred_at=at(3))
    s = state(service_db, delivery_id)
    assert (s["status"], s["opened"], s["opens"]) == ("opened", at(3), 3)
    assert (s["sent"], s["delivered"]) == (at(0), at(0))


def test_a_click_implies_the_open_and_repeat_clicks_are_counted(
    service_db: psycopg.Connection[Any], deliveries: Deliveries, email: tuple[UUID, str]
) -> None:
    delivery_id, tracking_id = email
    deliveries.record_email_event(
        tracking_id, "click", occurred_at=at(7), url="https://example.com/a"
    )
    deliveries.record_email_event(
        tracking_id, "click", occurred_at=at(8), url="https://example.com/b"
    )
    deliveries.record_email_event(tracking_id, "open", occurred_at=at(9))
    s = state(service_db, delivery_id)
    assert s["status"] == "clicked"
    assert (s["sent"], s["delivered"], s["opened"], s["clicked"]) == (at(7), at(7), at(7), at(7))
    assert (s["clicks"], s["opens"]) == (2, 1)


def test_bounce_after_delivered_applies_but_not_after_an_open(
    service_db: psycopg.Connection[Any], deliveries: Deliveries
) -> None:
    delivered_id, delivered_tracking = make_delivery(service_db, "email")
    deliveries.record_email_event(delivered_tracking, "delivered", occurred_at=at(0))
    assert deliveries.record_email_event(delivered_tracking, "bounce", occurred_at=at(1)) is True
    s = state(service_db, delivered_id)
    assert (s["status"], s["failed"], s["error"]) == ("bounced", at(1), "email bounced")

    opened_id, opened_tracking = make_delivery(service_db, "email")
    assert deliveries.record_email_event(opened_tracking, "open", occurred_at=at(0)) is True
    # The status stays, but the bounce leaves its timestamp and error (order-independent
    # state), so the first bounce changed the delivery and a repeat does not.
    assert deliveries.record_email_event(opened_tracking, "bounce", occurred_at=at(1)) is True
    s = state(service_db, opened_id)
    assert (s["status"], s["failed"], s["error"]) == ("opened", at(1), "email bounced")
    assert deliveries.record_email_event(opened_tracking, "bounce", occurred_at=at(2)) is False
    assert state(service_db, opened_id) == s


def test_delivered_after_open_changes_nothing(
    service_db: psycopg.Connection[Any], deliveries: Deliveries, email: tuple[UUID, str]
) -> None:
    delivery_id, tracking_id = email
    deliveries.record_email_event(tracking_id, "open", occurred_at=at(5))
    before = state(service_db, delivery_id)
    assert deliveries.record_email_event(tracking_id, "delivered", occurred_at=at(6)) is False
    assert state(service_db, delivery_id) == before
    logged = service_db.execute(
        "SELECT event, changed, delivery_id FROM notify.provider_callbacks ORDER BY id"
    ).fetchall()
    assert logged == [("open", True, delivery_id), ("delivered", False, delivery_id)]


def test_complaint_opts_the_recipient_out_of_email(
    service_db: psycopg.Connection[Any], deliveries: Deliveries, email: tuple[UUID, str]
) -> None:
    delivery_id, tracking_id = email
    deliveries.record_email_event(tracking_id, "complaint", occurred_at=at(2))
    assert state(service_db, delivery_id)["status"] == "delivered"
    assert one(
        service_db,
        "SELECT p.opted_out FROM notify.notification_preferences p "
        "JOIN notify.notification_deliveries d ON d.recipient_user_id = p.user_id "
        "WHERE d.id = %s AND p.channel = 'email'",
        delivery_id,
    ) == (True,)


def test_unknown_tracking_id_is_harmless(
    service_db: psycopg.Connection[Any], deliveries: Deliveries, email: tuple[UUID, str]
) -> None:
    delivery_id, _ = email
    before = state(service_db, delivery_id)
    assert deliveries.record_email_event("no-such-tracking-id", "open") is False
    assert state(service_db, delivery_id) == before
    assert one(service_db, "SELECT reference, changed FROM notify.provider_callbacks") == (
        "no-such-tracking-id",
        False,
    )


@pytest.mark.parametrize(
    ("arguments", "parameter"),
    [
        ({"event": "opened"}, "p_event"),
        ({"event": "unsubscribe"}, "p_event"),
        ({"event": None}, "p_event"),
        ({"tracking_id": None}, "p_tracking_id"),
        ({"tracking_id": ""}, "p_tracking_id"),
        ({"url": "javascript:alert(1)"}, "p_url"),
        ({"url": "https://exa mple.com"}, "p_url"),
        ({"tracking_id": "t" * 129}, "p_tracking_id"),
        ({"tracking_id": "t" * 1_000_000}, "p_tracking_id"),
        ({"event": "click" + " " * 28}, "p_event"),
        ({"url": "https://example.com/" + "a" * 2030}, "p_url"),
    ],
)
def test_bad_input_raises_22023_and_writes_nothing(
    service_db: psycopg.Connection[Any],
    deliveries: Deliveries,
    email: tuple[UUID, str],
    arguments: dict[str, Any],
    parameter: str,
) -> None:
    _, tracking_id = email
    before = snapshot(service_db)
    call: dict[str, Any] = {"tracking_id": tracking_id, "event": "click", **arguments}
    with pytest.raises(InvalidArgument) as raised:
        deliveries.record_email_event(**call)
    assert raised.value.parameter == parameter
    assert snapshot(service_db) == before


def test_null_occurred_at_raises(
    service_db: psycopg.Connection[Any], email: tuple[UUID, str]
) -> None:
    _, tracking_id = email
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=r"^p_occurred_at"):
        service_db.execute(
            "SELECT notify.record_email_event(%s, 'open', p_occurred_at => NULL)", (tracking_id,)
        )


async def test_async_wrapper(
    dsn: str, service_db: psycopg.Connection[Any], email: tuple[UUID, str]
) -> None:
    delivery_id, tracking_id = email
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SET ROLE service_role")
        assert await AsyncDeliveries(conn).record_email_event(
            tracking_id, "open", occurred_at=at(1)
        )
        assert not await AsyncDeliveries(conn).record_email_event("unknown", "open")
    assert state(service_db, delivery_id)["opened"] == at(1)
