"""emit_notification_event follows notification_subscriptions (the seed platform's
model), takes the platform's p_metadata / p_scheduled_for / p_actor_user_id, and a
signed-in user manages exactly their own subscriptions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from tests.helpers.deliveries import one, subscriber
from tests.helpers.postgrest import rpc

Conn = psycopg.Connection[Any]


def recipients(conn: Conn, event_id: UUID) -> dict[UUID, list[str]]:
    found: dict[UUID, list[str]] = {}
    for user_id, channel in conn.execute(
        "SELECT recipient_user_id, channel FROM notify.notification_deliveries "
        "WHERE event_id = %s ORDER BY channel",
        (event_id,),
    ):
        found.setdefault(user_id, []).append(channel)
    return found


def emit(conn: Conn, **args: Any) -> UUID:
    (row,) = rpc(conn, "emit_notification_event", args, schema="notify")
    event_id: UUID = row["emit_notification_event"]
    return event_id


def test_target_gets_deliveries_only_when_actively_subscribed(db: Conn) -> None:
    active = subscriber(db, "task.due")
    inactive = subscriber(db, "task.due")
    db.execute(
        "UPDATE notify.notification_subscriptions SET is_active = false WHERE user_id = %s",
        (inactive,),
    )
    other_type = subscriber(db, "other")
    base = {"p_event_type": "task.due", "p_payload": {}}
    assert len(recipients(db, emit(db, **base, p_target_user_id=active))[active]) == 4
    for user_id in (inactive, other_type, uuid4()):
        event_id = emit(db, **base, p_target_user_id=user_id)
        assert recipients(db, event_id) == {}
        assert one(db, "SELECT target_user_id FROM notify.notification_events WHERE id = %s",
                   event_id) == (user_id,)  # fmt: skip


def test_no_target_broadcasts_to_every_active_subscriber_with_their_preferences(db: Conn) -> None:
    first, second = subscriber(db, "admin.broadcast"), subscriber(db, "admin.broadcast", "x")
    inactive = subscriber(db, "admin.broadcast")
    db.execute(
        "UPDATE notify.notification_subscriptions SET is_active = false WHERE user_id = %s",
        (inactive,),
    )
    subscriber(db, "x")
    db.execute(
        "INSERT INTO notify.notification_preferences (user_id, channel, enabled) "
        "VALUES (%s, 'email', false), (%s, 'push', false)",
        (second, second),
    )
    event_id = emit(db, p_event_type="admin.broadcast", p_payload={"m": 1})
    assert recipients(db, event_id) == {
        first: ["email", "in_app", "push", "sms"],
        second: ["in_app", "sms"],
    }
    jobs = db.execute(
        "SELECT user_id, count(*) FROM notify.queue_jobs GROUP BY user_id ORDER BY 2"
    ).fetchall()
    assert sorted(jobs) == sorted([(first, 4), (second, 2)])


def test_metadata_correlation_id_is_the_correlation_id(db: Conn) -> None:
    user_id = subscriber(db)
    event_id = emit(
        db, p_event_type="x", p_payload={}, p_target_user_id=user_id,
        p_metadata={"correlationId": "corr-1", "source": "brief"},
    )  # fmt: skip
    correlations = {
        value
        for (value,) in db.execute(
            "SELECT correlation_id FROM notify.notification_events WHERE id = %(e)s "
            "UNION ALL SELECT correlation_id FROM notify.notification_deliveries "
            "WHERE event_id = %(e)s "
            "UNION ALL SELECT metadata ->> 'correlation_id' FROM notify.queue_jobs "
            "UNION ALL SELECT metadata ->> 'correlationId' FROM notify.queue_jobs",
            {"e": event_id},
        )
    }
    assert correlations == {"corr-1"}
    assert one(db, "SELECT metadata FROM notify.notification_events WHERE id = %s", event_id) == (
        {"correlationId": "corr-1", "source": "brief"},
    )
    explicit = emit(
        db, p_event_type="x", p_payload={}, p_target_user_id=user_id,
        p_correlation_id="given", p_metadata={"correlationId": "ignored"},
    )  # fmt: skip
    assert one(
        db, "SELECT correlation_id, metadata ->> 'correlationId' "
        "FROM notify.notification_events WHERE id = %s", explicit,
    ) == ("given", "given")  # fmt: skip


def test_a_generated_correlation_id_is_recorded_in_the_metadata(db: Conn) -> None:
    event_id = emit(db, p_event_type="x", p_payload={}, p_metadata={"a": 1})
    correlation, metadata = one(
        db, "SELECT correlation_id, metadata FROM notify.notification_events WHERE id = %s",
        event_id,
    )  # fmt: skip
    assert UUID(correlation) and metadata == {"a": 1, "correlationId": correlation}


def test_scheduled_for_delays_the_jobs(db: Conn) -> None:
    user_id = subscriber(db, "brief.completed")
    later = datetime.now(UTC) + timedelta(hours=2)
    emit(
        db, p_event_type="brief.completed", p_event_source="worker_job",
        p_target_user_id=user_id, p_payload={}, p_metadata={}, p_scheduled_for=later.isoformat(),
    )  # fmt: skip
    assert one(db, "SELECT count(*), min(scheduled_for), max(scheduled_for) "
               "FROM notify.queue_jobs") == (4, later, later)  # fmt: skip
    db.execute("SET ROLE service_role")
    claimed = db.execute(
        "SELECT * FROM notify.claim_pending_jobs(ARRAY['send_notification'], 10)"
    ).fetchall()
    assert claimed == []


# The platform's call shapes (keys as its callers send them).
PLATFORM_SHAPES = [
    ("p_event_type", "p_event_source", "p_target_user_id", "p_payload", "p_metadata",
     "p_scheduled_for"),
    ("p_event_type", "p_event_source", "p_actor_user_id", "p_target_user_id", "p_payload",
     "p_metadata"),
    ("p_event_type", "p_event_source", "p_actor_user_id", "p_payload", "p_metadata"),
    ("p_event_type", "p_event_source", "p_target_user_id", "p_payload"),
]  # fmt: skip


@pytest.mark.parametrize("keys", PLATFORM_SHAPES, ids=lambda keys: "+".join(k[2:] for k in keys))
def test_platform_call_shapes(db: Conn, keys: tuple[str, ...]) -> None:
    target, actor = subscriber(db, "project.updated"), uuid4()
    values: dict[str, Any] = {
        "p_event_type": "project.updated",
        "p_event_source": "api_action",
        "p_actor_user_id": actor,
        "p_target_user_id": target,
        "p_payload": {"title": "hi"},
        "p_metadata": {"correlationId": str(uuid4())},
        "p_scheduled_for": datetime.now(UTC).isoformat(),
    }
    event_id = emit(db, **{key: values[key] for key in keys})
    assert recipients(db, event_id) == {target: ["email", "in_app", "push", "sms"]}
    actor_stored, source = one(
        db, "SELECT actor_user_id, event_source FROM notify.notification_events WHERE id = %s",
        event_id,
    )  # fmt: skip
    assert actor_stored == (actor if "p_actor_user_id" in keys else None)
    assert source == "api_action"


def as_user(conn: Conn, user_id: UUID) -> None:
    conn.execute("SET ROLE authenticated")
    conn.execute(
        "SELECT set_config('request.jwt.claims', %s, false)", (json.dumps({"sub": str(user_id)}),)
    )


def test_inserting_only_user_and_event_type_subscribes(db: Conn) -> None:
    user_id = uuid4()
    db.execute(
        "INSERT INTO notify.notification_subscriptions (user_id, event_type) VALUES (%s, 'x')",
        (user_id,),
    )
    assert one(
        db, "SELECT is_active, admin_only, filters, created_at IS NOT NULL "
        "FROM notify.notification_subscriptions WHERE user_id = %s", user_id,
    ) == (True, False, None, True)  # fmt: skip
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute(
            "INSERT INTO notify.notification_subscriptions (user_id, event_type) VALUES (%s, 'x')",
            (user_id,),
        )


def test_a_signed_in_user_manages_exactly_their_own_subscriptions(db: Conn) -> None:
    me, other = uuid4(), subscriber(db, "x")
    as_user(db, me)
    db.execute(
        "INSERT INTO notify.notification_subscriptions (user_id, event_type) VALUES (%s, 'x') "
        "ON CONFLICT (user_id, event_type) DO UPDATE SET is_active = true",
        (me,),
    )
    db.execute(
        "INSERT INTO notify.notification_subscriptions (user_id, event_type, is_active) "
        "VALUES (%s, 'x', false) "
        "ON CONFLICT (user_id, event_type) DO UPDATE SET is_active = excluded.is_active",
        (me,),
    )
    assert db.execute("SELECT user_id, is_active FROM notify.notification_subscriptions"
                      ).fetchall() == [(me, False)]  # fmt: skip
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute(
            "INSERT INTO notify.notification_subscriptions (user_id, event_type) VALUES (%s, 'y')",
            (other,),
        )
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute(
            "UPDATE notify.notification_subscriptions SET admin_only = true WHERE user_id = %s",
            (me,),
        )
    assert (
        db.execute(
            "UPDATE notify.notification_subscriptions SET is_active = false WHERE user_id = %s",
            (other,),
        ).rowcount
        == 0
    )
    assert (
        db.execute(
            "DELETE FROM notify.notification_subscriptions WHERE user_id = %s", (other,)
        ).rowcount
        == 0
    )
    assert db.execute("DELETE FROM notify.notification_subscriptions").rowcount == 1
    db.execute("RESET ROLE")
    assert one(db, "SELECT count(*) FROM notify.notification_subscriptions") == (1,)
    db.execute("SET ROLE anon")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute("SELECT FROM notify.notification_subscriptions")
