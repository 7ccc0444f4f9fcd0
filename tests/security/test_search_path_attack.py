"""A hostile role plants look-alikes on every search_path it can reach; nothing changes.

The attacker creates, in `public` and in its own schema, a fake now(), a fake
gen_random_uuid(), a fake jsonb_typeof(), an always-true text equality operator and
shadow copies of the tables. The caller then puts those schemas FIRST on its
search_path and adds temporary shadow tables too. Every function pins
`search_path = notify, pg_temp` (pg_catalog implicitly first), so each RPC must behave
exactly as in a clean database: real ids and times, rows in notify's tables only.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import errors
from psycopg.types.json import Jsonb

FAKE_UUID = uuid.UUID("00000000-0000-0000-0000-000000000666")
FAKE_TIME = datetime(1999, 1, 1, tzinfo=UTC)
SHADOWED_TABLES = (
    "queue_jobs",
    "notification_deliveries",
    "notification_events",
    "sms_messages",
    "notification_subscriptions",
)

HOSTILE_OBJECTS = """
CREATE FUNCTION {s}.now() RETURNS timestamptz LANGUAGE sql
  AS $$ SELECT timestamptz '1999-01-01 00:00:00+00' $$;
CREATE FUNCTION {s}.gen_random_uuid() RETURNS uuid LANGUAGE sql
  AS $$ SELECT uuid '00000000-0000-0000-0000-000000000666' $$;
CREATE FUNCTION {s}.jsonb_typeof(jsonb) RETURNS text LANGUAGE sql AS $$ SELECT 'object' $$;
CREATE FUNCTION {s}.always_equal(text, text) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
CREATE OPERATOR {s}.= (LEFTARG = text, RIGHTARG = text, FUNCTION = {s}.always_equal);
CREATE TABLE {s}.queue_jobs (id uuid, status text);
CREATE TABLE {s}.notification_deliveries (id uuid, status text);
CREATE TABLE {s}.notification_events (id uuid);
CREATE TABLE {s}.sms_messages (id uuid, status text);
CREATE TABLE {s}.notification_subscriptions (id uuid, status text);
"""


@pytest.fixture
def hostile_db(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'attacker') "
            "THEN CREATE ROLE attacker NOLOGIN; END IF; END $$"
        )
        admin.execute("GRANT CREATE, USAGE ON SCHEMA public TO attacker")
        admin.execute("CREATE SCHEMA attacker AUTHORIZATION attacker")
        admin.execute("SET ROLE attacker")
        for schema in ("public", "attacker"):
            admin.execute(HOSTILE_OBJECTS.format(s=schema))
        admin.execute("RESET ROLE")
        admin.execute("GRANT USAGE ON SCHEMA attacker TO service_role")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET ROLE service_role")
        conn.execute("SET search_path = attacker, public, pg_catalog, notify")
        for table in SHADOWED_TABLES:
            conn.execute(f"CREATE TEMP TABLE {table} (id uuid, status text)")
        yield conn


def subscribe(conn: psycopg.Connection[Any], event_type: str) -> uuid.UUID:
    user = uuid.uuid4()
    conn.execute(
        "INSERT INTO notify.notification_subscriptions (user_id, event_type) VALUES (%s, %s)",
        (user, event_type),
    )
    return user


def call(conn: psycopg.Connection[Any], function: str, **args: object) -> list[tuple[Any, ...]]:
    named = ", ".join(f"{name} => %({name})s" for name in args)
    params = {k: Jsonb(v) if isinstance(v, dict) else v for k, v in args.items()}
    return conn.execute(f"SELECT * FROM notify.{function}({named})", params).fetchall()


def assert_shadows_untouched(conn: psycopg.Connection[Any]) -> None:
    conn.execute("RESET ROLE")  # the attacker's tables are not readable by service_role
    for table in SHADOWED_TABLES:
        for schema in ("public", "attacker", "pg_temp"):
            count = conn.execute(f"SELECT count(*) FROM {schema}.{table}").fetchone()
            assert count == (0,), f"{schema}.{table} was written"


def assert_real_time(value: datetime | None) -> None:
    assert value is not None
    assert abs(datetime.now(UTC) - value) < timedelta(hours=1), value


def test_queue_rpcs_ignore_look_alikes(hostile_db: psycopg.Connection[Any]) -> None:
    user = uuid.uuid4()
    [(job_id,)] = call(hostile_db, "add_queue_job", p_user_id=user, p_job_type="send",
                       p_metadata={"k": "v"}, p_dedup_key="dedup-1")  # fmt: skip
    assert job_id != FAKE_UUID
    [(same_id,)] = call(hostile_db, "add_queue_job", p_user_id=user, p_job_type="send",
                        p_metadata={"k": "v"}, p_dedup_key="dedup-1")  # fmt: skip
    assert same_id == job_id
    claimed = hostile_db.execute(
        "SELECT id, processing_token, started_at FROM notify.claim_pending_jobs(ARRAY['send'], 10)"
    ).fetchall()
    assert [row[0] for row in claimed] == [job_id]
    token, started_at = claimed[0][1], claimed[0][2]
    assert token != FAKE_UUID
    assert_real_time(started_at)
    assert call(hostile_db, "complete_queue_job", p_job_id=job_id,
                p_processing_token=uuid.uuid4()) == [(False,)]  # fmt: skip
    assert call(hostile_db, "complete_queue_job", p_job_id=job_id,
                p_processing_token=token) == [(True,)]  # fmt: skip
    with pytest.raises(errors.InvalidParameterValue):
        call(hostile_db, "add_queue_job", p_user_id=user, p_job_type="send", p_metadata=Jsonb([1]))
    assert_shadows_untouched(hostile_db)


def test_delivery_rpcs_ignore_look_alikes(hostile_db: psycopg.Connection[Any]) -> None:
    user = subscribe(hostile_db, "welcome")
    [(event_id,)] = call(hostile_db, "emit_notification_event", p_event_type="welcome",
                         p_payload={"x": 1}, p_target_user_id=user,
                         p_channels=["sms", "email"])  # fmt: skip
    assert event_id != FAKE_UUID
    deliveries = dict(
        hostile_db.execute(
            "SELECT channel, id FROM notify.notification_deliveries WHERE event_id = %s",
            (event_id,),
        ).fetchall()
    )
    assert set(deliveries) == {"sms", "email"}
    [(message_id,)] = hostile_db.execute(
        "INSERT INTO notify.sms_messages (user_id, phone_number, message_content, "
        "notification_delivery_id, twilio_sid) VALUES (%s, '+15550001', 'hi', %s, 'SM1') "
        "RETURNING id",
        (user, deliveries["sms"]),
    ).fetchall()
    call(hostile_db, "update_sms_status_atomic", p_message_id=message_id,
         p_twilio_sid="SM1", p_twilio_status="delivered")  # fmt: skip
    call(hostile_db, "update_sms_status_atomic", p_message_id=message_id,
         p_twilio_sid="SM1", p_twilio_status="sent")  # fmt: skip
    status, delivered_at = hostile_db.execute(
        "SELECT status, delivered_at FROM notify.notification_deliveries WHERE id = %s",
        (deliveries["sms"],),
    ).fetchone() or (None, None)
    assert status == "delivered"
    assert_real_time(delivered_at)
    # The always-true `=` would make an unknown tracking id match every delivery.
    assert call(hostile_db, "record_email_event", p_tracking_id="nope", p_event="open") == [
        (False,)
    ]
    [(code,)] = call(hostile_db, "create_sms_link", p_delivery_id=deliveries["sms"],
                     p_url="https://example.com/x")  # fmt: skip
    assert call(hostile_db, "record_sms_link_click", p_short_code=code + "zz") == [(None,)]
    assert call(hostile_db, "record_sms_link_click", p_short_code=code) == [
        ("https://example.com/x",)
    ]
    assert_shadows_untouched(hostile_db)


def test_the_other_queue_rpcs_ignore_look_alikes(hostile_db: psycopg.Connection[Any]) -> None:
    user = uuid.uuid4()
    [(ids,)] = call(hostile_db, "add_queue_jobs",
                    p_jobs=Jsonb([{"job_type": "bulk", "dedup_key": "b1", "user_id": str(user)},
                                  {"job_type": "bulk", "user_id": str(user)},
                                  {"job_type": "bulk", "user_id": str(user)}]))  # fmt: skip
    assert len(set(ids)) == 3 and FAKE_UUID not in ids
    jobs = hostile_db.execute(
        "SELECT id, processing_token FROM notify.claim_pending_jobs(ARRAY['bulk'], 10)"
    ).fetchall()
    (first, first_token), (second, second_token), (third, third_token) = jobs
    assert call(hostile_db, "heartbeat_queue_job", p_job_id=first,
                p_processing_token=first_token) == [(True,)]  # fmt: skip
    assert call(hostile_db, "fail_queue_job", p_job_id=first, p_error_message="boom",
                p_processing_token=first_token) == [(True,)]  # fmt: skip
    retry_at = hostile_db.execute(
        "SELECT scheduled_for FROM notify.queue_jobs WHERE id = %s", (first,)
    ).fetchone()
    assert retry_at is not None and retry_at[0] > datetime.now(UTC)
    assert call(hostile_db, "complete_queue_jobs", p_job_ids=[second],
                p_processing_tokens=[second_token]) == [([second],)]  # fmt: skip
    assert call(hostile_db, "release_queue_jobs", p_job_ids=[third],
                p_processing_tokens=[third_token]) == [([third],)]  # fmt: skip
    assert call(hostile_db, "cancel_job_with_reason", p_job_id=third, p_reason="r") == [(True,)]
    [(brief,)] = call(hostile_db, "add_queue_job", p_user_id=user,
                      p_job_type="generate_daily_brief",
                      p_metadata={"briefDate": "2026-11-28"})  # fmt: skip
    assert call(hostile_db, "cancel_brief_jobs_for_date", p_user_id=user,
                p_brief_date="2026-11-27") == [(0, [])]  # fmt: skip
    cancelled = call(hostile_db, "cancel_jobs_atomic", p_user_id=user,
                     p_job_type="generate_daily_brief")  # fmt: skip
    assert [row[0] for row in cancelled] == [brief]
    assert call(hostile_db, "reset_stalled_jobs") == [(0,)]
    assert call(hostile_db, "prune_queue_jobs") == [(0,)]
    stats = {(row[0], row[1]) for row in call(hostile_db, "queue_stats")}
    assert ("bulk", "pending") in stats and ("bulk", "completed") in stats
    assert_shadows_untouched(hostile_db)


def test_analytics_and_tracing_rpcs_ignore_look_alikes(
    hostile_db: psycopg.Connection[Any],
) -> None:
    user = subscribe(hostile_db, "digest")
    [(event_id,)] = call(hostile_db, "emit_notification_event", p_event_type="digest",
                         p_payload={}, p_target_user_id=user, p_channels=["email"],
                         p_correlation_id="trace-1")  # fmt: skip
    [(delivery,)] = hostile_db.execute(
        "SELECT id FROM notify.notification_deliveries WHERE event_id = %s", (event_id,)
    ).fetchall()
    assert call(hostile_db, "apply_delivery_status", p_delivery_id=delivery,
                p_status="failed", p_error="smtp 550") == [(True, "trace-1")]  # fmt: skip
    assert call(hostile_db, "opt_out_user_channel", p_user_id=user, p_channel="email",
                p_reason="complaint") == [(True,)]  # fmt: skip
    channels = {row[0]: row for row in call(hostile_db, "get_notification_channel_performance")}
    assert set(channels) == {"email", "sms", "push", "in_app"}
    assert channels["email"][6] == 1  # failed
    [events] = call(hostile_db, "get_notification_event_performance")
    assert events[:3] == ("digest", 1, 1)
    assert len(call(hostile_db, "get_sms_notification_stats")) == 1
    assert [row[0] for row in call(hostile_db, "get_notification_overview")] == [
        "current",
        "previous",
    ]
    assert call(hostile_db, "get_notification_delivery_timeline", p_interval="2 days")
    [failure] = call(hostile_db, "get_recent_failed_deliveries")
    assert delivery in failure
    kinds = {row[1] for row in call(hostile_db, "get_notification_trace",
                                    p_correlation_id="trace-1")}  # fmt: skip
    assert {"event", "delivery", "job"} <= kinds
    assert_shadows_untouched(hostile_db)


def test_the_attacker_itself_may_call_nothing(
    dsn: str, hostile_db: psycopg.Connection[Any]
) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET ROLE attacker")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SELECT notify.claim_pending_jobs(ARRAY['send'], 1)")
