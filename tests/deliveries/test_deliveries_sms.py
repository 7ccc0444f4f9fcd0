"""update_sms_status_atomic: Twilio callbacks applied to sms_messages and the delivery
together, monotonically, idempotently, whatever their order or concurrency."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notify_sql.errors import InvalidArgument
from notify_sql.wrappers import AsyncDeliveries, Deliveries
from tests.helpers.deliveries import (
    IMPLIED_STAGES,
    TWILIO_RANKING,
    TWILIO_TO_DELIVERY,
    make_delivery,
    make_sms,
    one,
    run_concurrently,
    snapshot,
)
from tests.helpers.postgrest import rpc

STATE_QUERY = """
SELECT s.twilio_status, s.status, d.status,
       s.sent_at, s.delivered_at, s.failed_at,
       d.sent_at, d.delivered_at, d.failed_at, d.opened_at
FROM notify.sms_messages s JOIN notify.notification_deliveries d
  ON d.id = s.notification_delivery_id
WHERE s.id = %s
"""


def highest(statuses: list[str]) -> str:
    return max(statuses, key=TWILIO_RANKING.index)


def assert_final_state(
    conn: psycopg.Connection[Any], message_id: UUID, received: list[str]
) -> None:
    """The SMS and its delivery hold the state of the highest-ranked status received;
    a timestamp is set exactly when some received status implies its stage, and both
    tables hold the same one."""
    (
        twilio_status,
        sms_status,
        delivery_status,
        sms_sent,
        sms_delivered,
        sms_failed,
        sent,
        delivered,
        failed,
        opened,
    ) = one(conn, STATE_QUERY, message_id)
    top = highest(received)
    assert twilio_status == top
    assert sms_status == delivery_status == TWILIO_TO_DELIVERY[top]
    stages = set().union(*(IMPLIED_STAGES[TWILIO_TO_DELIVERY[s]] for s in received))
    assert (sent is not None, delivered is not None, failed is not None, opened is not None) == (
        "sent" in stages,
        "delivered" in stages,
        "failed" in stages,
        "opened" in stages,
    )
    assert (sms_sent, sms_delivered, sms_failed) == (sent, delivered, failed)


@pytest.fixture
def deliveries(service_db: psycopg.Connection[Any]) -> Deliveries:
    return Deliveries(service_db)


def new_message(conn: psycopg.Connection[Any], twilio_sid: str | None = None) -> UUID:
    delivery_id, _ = make_delivery(conn, "sms")
    return make_sms(conn, delivery_id, twilio_sid)


@pytest.mark.parametrize("twilio_status", TWILIO_RANKING)
def test_each_twilio_status_maps_onto_both_tables(
    service_db: psycopg.Connection[Any], deliveries: Deliveries, twilio_status: str
) -> None:
    message_id = new_message(service_db)
    result = deliveries.update_sms_status_atomic(message_id, None, twilio_status)[0]
    assert result.updated_sms
    assert result.updated_delivery == (TWILIO_TO_DELIVERY[twilio_status] != "pending")
    assert_final_state(service_db, message_id, [twilio_status])


def test_returns_the_message_fields(
    service_db: psycopg.Connection[Any], deliveries: Deliveries
) -> None:
    delivery_id, _ = make_delivery(service_db, "sms")
    message_id = make_sms(service_db, delivery_id)
    result = deliveries.update_sms_status_atomic(message_id, "SM1", "delivered")[0]
    user_id, sent_at, delivered_at = one(
        service_db, "SELECT user_id, sent_at, delivered_at FROM notify.sms_messages WHERE id = %s",
        message_id,
    )  # fmt: skip
    assert result.notification_delivery_id == delivery_id
    assert (result.user_id, result.sent_at, result.delivered_at) == (user_id, sent_at, delivered_at)
    assert (result.attempt_count, result.max_attempts, result.priority) == (0, 3, "normal")
    assert (result.updated_sms, result.updated_delivery) == (True, True)


def test_lookup_falls_back_to_the_sid_and_stores_a_new_sid(
    service_db: psycopg.Connection[Any], deliveries: Deliveries
) -> None:
    by_sid = new_message(service_db, twilio_sid="SMfallback")
    deliveries.update_sms_status_atomic(uuid4(), "SMfallback", "sent")[0]
    assert_final_state(service_db, by_sid, ["sent"])

    by_id = new_message(service_db)
    deliveries.update_sms_status_atomic(by_id, "SMnew", "sent")[0]
    assert one(service_db, "SELECT twilio_sid FROM notify.sms_messages WHERE id = %s", by_id) == (
        "SMnew",
    )
    deliveries.update_sms_status_atomic(None, "SMnew", "read")[0]
    assert_final_state(service_db, by_id, ["sent", "read"])


def test_a_sid_held_by_another_message_is_refused(
    service_db: psycopg.Connection[Any], deliveries: Deliveries
) -> None:
    new_message(service_db, twilio_sid="SMtaken")
    without_sid = new_message(service_db)
    before = snapshot(service_db)
    with pytest.raises(InvalidArgument) as raised:
        deliveries.update_sms_status_atomic(without_sid, "SMtaken", "sent")[0]
    assert raised.value.parameter == "p_twilio_sid"
    assert snapshot(service_db) == before


def test_duplicate_and_lower_callbacks_change_nothing(
    service_db: psycopg.Connection[Any], deliveries: Deliveries
) -> None:
    message_id = new_message(service_db)
    deliveries.update_sms_status_atomic(message_id, None, "delivered")[0]
    before = snapshot(service_db)["sms_messages"], snapshot(service_db)["notification_deliveries"]
    for late in ("delivered", "sent", "queued"):
        result = deliveries.update_sms_status_atomic(message_id, None, late)[0]
        assert (result.updated_sms, result.updated_delivery) == (False, False)
    after = snapshot(service_db)["sms_messages"], snapshot(service_db)["notification_deliveries"]
    assert after == before
    logged = service_db.execute(
        "SELECT event, changed FROM notify.provider_callbacks "
        "WHERE sms_message_id = %s ORDER BY id",
        (message_id,),
    ).fetchall()
    assert logged == [("delivered", True), ("delivered", False), ("sent", False), ("queued", False)]


def test_delivered_receipt_overrides_an_earlier_failure_and_keeps_its_error(
    service_db: psycopg.Connection[Any], deliveries: Deliveries
) -> None:
    message_id = new_message(service_db)
    deliveries.update_sms_status_atomic(
        message_id,
        None,
        "undelivered",
        error_code=30003,
        error_message="Unreachable destination handset",
    )[0]
    code, message, last_error = one(
        service_db,
        "SELECT s.twilio_error_code, s.twilio_error_message, d.last_error "
        "FROM notify.sms_messages s JOIN notify.notification_deliveries d "
        "ON d.id = s.notification_delivery_id WHERE s.id = %s",
        message_id,
    )
    assert (code, message) == (30003, "Unreachable destination handset")
    assert "30003" in last_error and "Unreachable destination handset" in last_error
    deliveries.update_sms_status_atomic(message_id, None, "delivered")[0]
    assert_final_state(service_db, message_id, ["undelivered", "delivered"])


def test_error_21610_opts_the_user_out_of_sms(
    service_db: psycopg.Connection[Any], deliveries: Deliveries
) -> None:
    message_id = new_message(service_db)
    result = deliveries.update_sms_status_atomic(
        message_id,
        None,
        "failed",
        error_code=21610,
        error_message="Attempt to send to unsubscribed recipient",
    )[0]
    opted_out, phone = one(
        service_db,
        "SELECT opted_out, phone_number FROM notify.notification_preferences "
        "WHERE user_id = %s AND channel = 'sms'",
        result.user_id,
    )
    assert (opted_out, phone) == (True, "+15550100")


def test_unknown_message_returns_one_row_and_is_logged(
    service_db: psycopg.Connection[Any], deliveries: Deliveries
) -> None:
    result = deliveries.update_sms_status_atomic(uuid4(), "SMunknown", "delivered")[0]
    assert (result.updated_sms, result.updated_delivery, result.user_id) == (False, False, None)
    assert one(
        service_db,
        "SELECT reference, changed, sms_message_id FROM notify.provider_callbacks",
    ) == ("SMunknown", False, None)


@pytest.mark.parametrize(
    ("arguments", "parameter"),
    [
        ({"twilio_status": "receiving"}, "p_twilio_status"),
        ({"twilio_status": "received"}, "p_twilio_status"),
        ({"twilio_status": "delivrd"}, "p_twilio_status"),
        ({"twilio_status": ""}, "p_twilio_status"),
        ({"twilio_status": None}, "p_twilio_status"),
        ({"twilio_status": "sent", "message_id": None, "twilio_sid": None}, "p_message_id"),
        ({"twilio_status": "sent", "message_id": None, "twilio_sid": " "}, "p_message_id"),
        ({"twilio_status": "sent", "twilio_sid": "SMother"}, "p_twilio_sid"),
        ({"twilio_status": "sent", "twilio_sid": "SM" + "x" * 63}, "p_twilio_sid"),
        ({"twilio_status": "delivered", "mapped_status": "bogus"}, "p_mapped_status"),
        ({"twilio_status": "delivered", "mapped_status": "receiving"}, "p_mapped_status"),
        ({"twilio_status": "delivered", "mapped_status": "x" * 33}, "p_mapped_status"),
        ({"twilio_status": "failed", "error_message": "x" * 2001}, "p_error_message"),
    ],
)
def test_bad_input_raises_22023_and_writes_nothing(
    service_db: psycopg.Connection[Any],
    deliveries: Deliveries,
    arguments: dict[str, Any],
    parameter: str,
) -> None:
    message_id = new_message(service_db, twilio_sid="SMbad")
    before = snapshot(service_db)
    call: dict[str, Any] = {"message_id": message_id, "twilio_sid": "SMbad", **arguments}
    with pytest.raises(InvalidArgument) as raised:
        deliveries.update_sms_status_atomic(**call)[0]
    assert raised.value.parameter == parameter
    assert snapshot(service_db) == before


def test_a_matching_mapped_status_is_accepted(
    service_db: psycopg.Connection[Any], deliveries: Deliveries
) -> None:
    message_id = new_message(service_db)
    deliveries.update_sms_status_atomic(message_id, None, "read", mapped_status="opened")[0]
    assert_final_state(service_db, message_id, ["read"])


def test_sms_without_delivery_is_updated_alone(
    service_db: psycopg.Connection[Any], deliveries: Deliveries
) -> None:
    message_id = make_sms(service_db, None)
    result = deliveries.update_sms_status_atomic(message_id, None, "sent")[0]
    assert (result.updated_sms, result.updated_delivery) == (True, False)


def test_both_tables_or_neither(db: psycopg.Connection[Any], deliveries: Deliveries) -> None:
    """When the delivery update fails (here: a trigger that raises), the SMS row and the
    callback log are left exactly as they were."""
    message_id = new_message(db)
    db.execute(
        "CREATE FUNCTION notify.refuse_delivery_update() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'delivery update refused'; END $$"
    )
    db.execute(
        "CREATE TRIGGER refuse BEFORE UPDATE ON notify.notification_deliveries "
        "FOR EACH ROW EXECUTE FUNCTION notify.refuse_delivery_update()"
    )
    before = snapshot(db)
    with pytest.raises(psycopg.errors.RaiseException, match="delivery update refused"):
        deliveries.update_sms_status_atomic(message_id, None, "delivered")[0]
    assert snapshot(db) == before
    assert one(db, "SELECT status, twilio_status FROM notify.sms_messages") == ("pending", None)


# Up to 8 callbacks (a Twilio status and a flag each), and a shuffle of them.
CALLBACK_ORDERINGS = given(
    callbacks=st.lists(
        st.tuples(st.sampled_from(TWILIO_RANKING), st.booleans()), min_size=1, max_size=8
    ),
    order=st.randoms(use_true_random=False),
)


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@CALLBACK_ORDERINGS
def test_any_callback_sequence_ends_in_its_highest_status(
    service_db: psycopg.Connection[Any],
    deliveries: Deliveries,
    callbacks: list[tuple[str, bool]],
    order: random.Random,
) -> None:
    """Property: any sequence of callbacks (duplicates, any order, looked up by id or
    by sid), and the same callbacks shuffled, both end in the state of the highest
    status, with sms_messages and notification_deliveries agreeing."""
    shuffled = list(callbacks)
    order.shuffle(shuffled)
    received = [status for status, _ in callbacks]
    for sequence in (callbacks, shuffled):
        sid = f"SM{uuid4().hex}"
        message_id = new_message(service_db, twilio_sid=sid)
        for status, by_sid in sequence:
            deliveries.update_sms_status_atomic(None if by_sid else message_id, sid, status)[0]
        assert_final_state(service_db, message_id, received)


def test_concurrent_callback_streams_lose_no_update(
    dsn: str, service_db: psycopg.Connection[Any]
) -> None:
    """8 threads, each on its own connection, send interleaved random callback streams
    for the same messages; every message ends in the highest status any stream sent,
    both tables agree, and every callback is logged."""
    streams, per_message = 8, 4
    messages = [new_message(service_db) for _ in range(12)]
    plans = []
    for seed in range(streams):
        rng = random.Random(seed)
        plan = [(m, rng.choice(TWILIO_RANKING)) for m in messages for _ in range(per_message)]
        rng.shuffle(plan)
        plans.append(plan)

    def stream(plan: list[tuple[UUID, str]]) -> Callable[[Deliveries], None]:
        def job(worker: Deliveries) -> None:
            for message_id, status in plan:
                worker.update_sms_status_atomic(message_id, None, status)[0]

        return job

    run_concurrently(dsn, [stream(plan) for plan in plans])
    for message_id in messages:
        received = [status for plan in plans for m, status in plan if m == message_id]
        assert_final_state(service_db, message_id, received)
    assert one(service_db, "SELECT count(*) FROM notify.provider_callbacks") == (
        streams * per_message * len(messages),
    )


async def test_async_wrapper(dsn: str, service_db: psycopg.Connection[Any]) -> None:
    message_id = new_message(service_db)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SET ROLE service_role")
        [result] = await AsyncDeliveries(conn).update_sms_status_atomic(
            message_id, None, "delivered"
        )
        with pytest.raises(InvalidArgument):
            await AsyncDeliveries(conn).update_sms_status_atomic(message_id, None, "received")
    assert result.updated_sms
    assert_final_state(service_db, message_id, ["delivered"])


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_only_service_role_may_call(db: psycopg.Connection[Any], role: str) -> None:
    db.execute(f"SET ROLE {role}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        Deliveries(db).update_sms_status_atomic(uuid4(), None, "sent")[0]


# The seed platform's Twilio webhook: `statusMap[MessageStatus] || MessageStatus`, its
# SMS vocabulary (accepted -> queued, canceled -> cancelled; scheduled and read pass
# through unchanged), sent as p_mapped_status beside the Twilio status.
PLATFORM_SMS_STATUS = {
    "accepted": "queued",
    "scheduled": "scheduled",
    "queued": "queued",
    "sending": "sending",
    "sent": "sent",
    "canceled": "cancelled",
    "failed": "failed",
    "undelivered": "undelivered",
    "delivered": "delivered",
    "read": "read",
}


def platform_webhook(
    conn: psycopg.Connection[Any],
    message_id: UUID,
    sid: str,
    status: str,
    error: tuple[int | None, str | None] = (None, None),
) -> dict[str, Any]:
    """The platform webhook's RPC, sent as PostgREST sends it (undefined keys left out)."""
    args: dict[str, Any] = {
        "p_message_id": message_id,
        "p_twilio_sid": sid,
        "p_twilio_status": status,
        "p_mapped_status": PLATFORM_SMS_STATUS[status],
    }
    error_code, error_message = error
    if error_code is not None:
        args["p_error_code"] = error_code
    if error_message is not None:
        args["p_error_message"] = error_message
    (row,) = rpc(conn, "update_sms_status_atomic", args, schema="notify")
    return row


@pytest.mark.parametrize("with_error", [False, True], ids=["no-error", "error"])
@pytest.mark.parametrize("twilio_status", TWILIO_RANKING)
def test_platform_webhook_sms_vocabulary_every_status(
    db: psycopg.Connection[Any], twilio_status: str, with_error: bool
) -> None:
    """Every Twilio status with the platform's mapped SMS status, with and without an
    error: accepted, and both tables follow the Twilio status."""
    sid = f"SM{uuid4().hex}"
    message_id = new_message(db, twilio_sid=sid)
    error = (30003, "Unreachable destination handset") if with_error else (None, None)
    row = platform_webhook(db, message_id, sid, twilio_status, error)
    assert row["updated_sms"] is True
    # An error is kept in the delivery's last_error even while it stays pending.
    assert row["updated_delivery"] == (TWILIO_TO_DELIVERY[twilio_status] != "pending" or with_error)
    assert row["notification_delivery_id"] is not None and row["user_id"] is not None
    assert_final_state(db, message_id, [twilio_status])
    code, message = one(
        db, "SELECT twilio_error_code, twilio_error_message FROM notify.sms_messages WHERE id = %s",
        message_id,
    )  # fmt: skip
    assert (code, message) == error


@pytest.mark.parametrize("mapped", ["opened", "clicked", "bounced", "pending", "Delivered"])
def test_mapped_status_in_the_delivery_vocabulary_is_informational(
    service_db: psycopg.Connection[Any], deliveries: Deliveries, mapped: str
) -> None:
    """A status name that disagrees with the Twilio status is accepted and ignored."""
    message_id = new_message(service_db)
    service_db.execute(
        "SELECT notify.update_sms_status_atomic(p_message_id => %s, p_twilio_sid => NULL, "
        "p_twilio_status => 'sent', p_mapped_status => %s)",
        (message_id, mapped),
    )
    assert_final_state(service_db, message_id, ["sent"])


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@CALLBACK_ORDERINGS
def test_platform_webhook_any_order_ends_in_the_highest_status(
    db: psycopg.Connection[Any], callbacks: list[tuple[str, bool]], order: random.Random
) -> None:
    """Property: the platform webhook's calls (SMS vocabulary, some with an error code),
    in the order drawn and shuffled, end in the same state: the highest Twilio status
    received, both tables agreeing."""
    shuffled = list(callbacks)
    order.shuffle(shuffled)
    received = [status for status, _ in callbacks]
    finals = []
    for sequence in (callbacks, shuffled):
        sid = f"SM{uuid4().hex}"
        message_id = new_message(db, twilio_sid=sid)
        for status, with_error in sequence:
            error = (30008, "Unknown error") if with_error else (None, None)
            platform_webhook(db, message_id, sid, status, error)
        assert_final_state(db, message_id, received)
        finals.append(
            one(
                db,
                "SELECT s.status, s.twilio_status, d.status FROM notify.sms_messages s "
                "JOIN notify.notification_deliveries d ON d.id = s.notification_delivery_id "
                "WHERE s.id = %s",
                message_id,
            )
        )
    assert finals[0] == finals[1]
