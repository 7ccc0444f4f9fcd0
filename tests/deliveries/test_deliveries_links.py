"""SMS short links: create_sms_link and record_sms_link_click."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from notify_sql.errors import InvalidArgument
from notify_sql.wrappers import AsyncDeliveries, Deliveries
from tests.helpers.deliveries import (
    DELIVERY_RANKING,
    TWILIO_RANKING,
    TWILIO_TO_DELIVERY,
    make_delivery,
    make_sms,
    one,
    run_concurrently,
    snapshot,
)

URL = "https://example.com/tasks/42?utm_source=sms"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def deliveries(service_db: psycopg.Connection[Any]) -> Deliveries:
    return Deliveries(service_db)


@pytest.fixture
def delivery_id(service_db: psycopg.Connection[Any]) -> UUID:
    return make_delivery(service_db, "sms")[0]


def delivery_state(conn: psycopg.Connection[Any], delivery_id: UUID) -> tuple[Any, ...]:
    return one(
        conn,
        "SELECT status, opened_at, clicked_at, click_count "
        "FROM notify.notification_deliveries WHERE id = %s",
        delivery_id,
    )


def test_codes_are_random_url_safe_and_reused_per_url(
    deliveries: Deliveries, delivery_id: UUID
) -> None:
    code = deliveries.create_sms_link(delivery_id, URL)
    other = deliveries.create_sms_link(delivery_id, "http://example.com/other")
    assert code is not None and re.fullmatch(r"[A-Za-z0-9_-]{8}", code)
    assert other != code
    assert deliveries.create_sms_link(delivery_id, URL) == code


def test_a_colliding_code_is_retried(
    db: psycopg.Connection[Any], deliveries: Deliveries, delivery_id: UUID
) -> None:
    """The generator is replaced by one that first returns a taken code."""
    taken = deliveries.create_sms_link(delivery_id, URL)
    db.execute("CREATE SEQUENCE notify.code_calls")
    db.execute(
        "CREATE OR REPLACE FUNCTION notify.generate_short_code() RETURNS text "
        "LANGUAGE sql SET search_path = notify, pg_temp AS $$ "
        f"SELECT CASE nextval('notify.code_calls') WHEN 1 THEN '{taken}' ELSE 'fresh-code' END $$"
    )
    db.execute("GRANT USAGE ON SEQUENCE notify.code_calls TO service_role")
    assert deliveries.create_sms_link(delivery_id, "https://example.com/second") == "fresh-code"


def test_clicks_are_counted_and_reach_the_delivery(
    service_db: psycopg.Connection[Any], deliveries: Deliveries, delivery_id: UUID
) -> None:
    code = deliveries.create_sms_link(delivery_id, URL)
    assert deliveries.record_sms_link_click(code, occurred_at=T0 + timedelta(minutes=5)) == URL
    assert deliveries.record_sms_link_click(code, occurred_at=T0 + timedelta(minutes=2)) == URL
    assert deliveries.record_sms_link_click(code, occurred_at=T0 + timedelta(minutes=9)) == URL
    first = T0 + timedelta(minutes=2)
    assert delivery_state(service_db, delivery_id) == ("clicked", first, first, 3)
    assert one(
        service_db,
        "SELECT click_count, first_clicked_at, last_clicked_at FROM notify.sms_links",
    ) == (3, first, T0 + timedelta(minutes=9))
    assert one(
        service_db,
        "SELECT count(*), bool_and(changed) FROM notify.provider_callbacks "
        "WHERE provider = 'sms_link' AND delivery_id = %s",
        delivery_id,
    ) == (3, True)


def test_unknown_code_is_harmless(
    service_db: psycopg.Connection[Any], deliveries: Deliveries, delivery_id: UUID
) -> None:
    deliveries.create_sms_link(delivery_id, URL)
    before = delivery_state(service_db, delivery_id)
    assert deliveries.record_sms_link_click("nosuchcode") is None
    assert deliveries.record_sms_link_click("../../etc") is None
    assert delivery_state(service_db, delivery_id) == before
    assert one(service_db, "SELECT sum(click_count) FROM notify.sms_links") == (0,)


def test_concurrent_clicks_are_all_counted(
    dsn: str, service_db: psycopg.Connection[Any], deliveries: Deliveries, delivery_id: UUID
) -> None:
    code = deliveries.create_sms_link(delivery_id, URL)
    threads, clicks = 8, 25

    def click(worker: Deliveries) -> None:
        for _ in range(clicks):
            worker.record_sms_link_click(code)

    run_concurrently(dsn, [click] * threads)
    assert delivery_state(service_db, delivery_id)[3] == threads * clicks
    assert one(service_db, "SELECT click_count FROM notify.sms_links") == (threads * clicks,)


def test_clicks_and_twilio_callbacks_interleave_without_deadlock_or_lost_update(
    dsn: str, service_db: psycopg.Connection[Any], deliveries: Deliveries
) -> None:
    """Link clicks lock link then delivery, Twilio callbacks SMS then delivery: mixed
    streams on the same deliveries neither deadlock nor lose a click or a status."""
    targets = []
    for _ in range(6):
        delivery_id = make_delivery(service_db, "sms")[0]
        targets.append((delivery_id, make_sms(service_db, delivery_id),
                        deliveries.create_sms_link(delivery_id, URL)))  # fmt: skip
    rng = random.Random(7)
    statuses = {sms: [rng.choice(TWILIO_RANKING) for _ in range(12)] for _, sms, _ in targets}

    def callbacks(stream: int) -> Callable[[Deliveries], None]:
        def job(worker: Deliveries) -> None:
            for _, sms, code in targets:
                for status in statuses[sms][stream::4]:
                    worker.update_sms_status_atomic(sms, None, status)[0]
                    worker.record_sms_link_click(code)

        return job

    run_concurrently(dsn, [callbacks(stream) for stream in range(4)] * 2)
    for delivery_id, sms, _ in targets:
        top = max(statuses[sms], key=TWILIO_RANKING.index)
        status, clicks = one(
            service_db,
            "SELECT status, click_count FROM notify.notification_deliveries WHERE id = %s",
            delivery_id,
        )
        assert status == "clicked"
        assert clicks == 2 * len(statuses[sms])
        assert one(
            service_db, "SELECT twilio_status, status FROM notify.sms_messages WHERE id = %s", sms
        ) == (top, TWILIO_TO_DELIVERY[top])
        assert DELIVERY_RANKING.index(status) >= DELIVERY_RANKING.index(TWILIO_TO_DELIVERY[top])


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (None, "NULL or empty"),
        ("", "NULL or empty"),
        ("ftp://example.com/file", "not an http"),
        ("javascript:alert(1)", "not an http"),
        ("https://", "not an http"),
        ("https://exa mple.com/", "not an http"),
        ("example.com/path", "not an http"),
    ],
)
def test_bad_url_raises_22023_and_writes_nothing(
    service_db: psycopg.Connection[Any],
    deliveries: Deliveries,
    delivery_id: UUID,
    url: str | None,
    problem: str,
) -> None:
    before = snapshot(service_db)
    with pytest.raises(InvalidArgument, match=problem) as raised:
        deliveries.create_sms_link(delivery_id, url)
    assert raised.value.parameter == "p_url"
    assert snapshot(service_db) == before


@pytest.mark.parametrize("delivery", [None, "unknown"])
def test_missing_delivery_raises_22023(
    service_db: psycopg.Connection[Any], deliveries: Deliveries, delivery: str | None
) -> None:
    before = snapshot(service_db)
    with pytest.raises(InvalidArgument) as raised:
        deliveries.create_sms_link(uuid4() if delivery else None, URL)
    assert raised.value.parameter == "p_delivery_id"
    assert snapshot(service_db) == before


def test_null_short_code_raises_22023_and_writes_nothing(
    service_db: psycopg.Connection[Any], deliveries: Deliveries
) -> None:
    before = snapshot(service_db)
    with pytest.raises(InvalidArgument) as raised:
        deliveries.record_sms_link_click(None)
    assert raised.value.parameter == "p_short_code"
    assert snapshot(service_db) == before


async def test_async_wrapper(
    dsn: str, service_db: psycopg.Connection[Any], delivery_id: UUID
) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SET ROLE service_role")
        links = AsyncDeliveries(conn)
        code = await links.create_sms_link(delivery_id, URL)
        assert await links.record_sms_link_click(code) == URL
        assert await links.record_sms_link_click("missing1") is None
    assert delivery_state(service_db, delivery_id)[0] == "clicked"
