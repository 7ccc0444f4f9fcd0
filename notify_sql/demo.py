"""``notify-sql demo``: an end-to-end scenario on a throwaway or given database.

One event fans out to deliveries and queue jobs; a worker claims and "sends" them;
provider callbacks arrive late, twice and out of order; a stalled worker is fenced
out; analytics count the result. Everything goes through the same typed wrappers an
app would use. In a throwaway database the calls are made as ``service_role``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg

from notify_sql.migrator import migrate
from notify_sql.rpc import call_value
from notify_sql.throwaway import throwaway_postgres
from notify_sql.wrappers import Analytics, Deliveries, Queue

Echo = Callable[[str], None]
SEND_JOB = "send_notification"
# Where the demo runs in a database given with --dsn (see run_demo).
DEMO_SCHEMA = "notify_demo"


def _setup_recipient(conn: psycopg.Connection[Any], user: uuid.UUID) -> None:
    conn.execute(
        "INSERT INTO notification_preferences (user_id, channel, enabled, phone_number, "
        "phone_verified) VALUES (%s, 'sms', true, '+15550100', true), "
        "(%s, 'push', false, NULL, false)",
        (user, user),
    )
    # emit_notification_event delivers only to users subscribed to the event type.
    conn.execute(
        "INSERT INTO notification_subscriptions (user_id, event_type) "
        "VALUES (%s, 'comment.created')",
        (user,),
    )


def _send(conn: psycopg.Connection[Any], schema: str, job_metadata: Any, twilio_sid: str) -> str:
    """What a real worker would hand to a provider; here the provider is imaginary."""
    delivery_id = uuid.UUID(job_metadata["delivery_id"])
    row = conn.execute(
        "SELECT channel, recipient_user_id FROM notification_deliveries WHERE id = %s",
        (delivery_id,),
    ).fetchone()
    assert row is not None
    channel, user = row
    if channel == "sms":
        conn.execute(
            "INSERT INTO sms_messages (user_id, phone_number, message_content, "
            "notification_delivery_id, twilio_sid) VALUES (%s, '+15550100', 'Hi!', %s, %s)",
            (user, delivery_id, twilio_sid),
        )
    # apply_delivery_status is an internal helper (no wrapper): the worker's report.
    report = {"p_delivery_id": delivery_id, "p_status": "sent"}
    call_value(conn, "apply_delivery_status", report, schema)
    return str(channel)


def _percent(rate: object) -> str:
    return "n/a" if rate is None else f"{rate}%"


def _scenario(dsn: str, schema: str, echo: Echo, as_service_role: bool) -> None:
    steps = migrate(dsn, schema)
    echo(f"1. installed into schema {schema}: {len(steps)} steps applied")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("SET search_path = {}").format(psycopg.sql.Identifier(schema)))
        if as_service_role:
            conn.execute("SET ROLE service_role")
        queue, deliveries, analytics = (
            Queue(conn, schema),
            Deliveries(conn, schema),
            Analytics(conn, schema),
        )
        user = uuid.uuid4()
        twilio_sid = f"SMdemo{uuid.uuid4().hex}"  # unique per run, so the demo can run again
        _setup_recipient(conn, user)

        event_id = deliveries.emit_notification_event(
            "comment.created", {"text": "Nice work"}, target_user_id=user
        )
        jobs = conn.execute(
            "SELECT count(*) FROM queue_jobs WHERE job_type = %s AND status = 'pending'",
            (SEND_JOB,),
        ).fetchone()
        echo(
            f"2. emitted event {event_id}: push is disabled for this user, so "
            f"3 deliveries and {jobs[0] if jobs else 0} {SEND_JOB} jobs, one transaction"
        )

        claimed = queue.claim_pending_jobs([SEND_JOB], batch_size=10)
        channels = [_send(conn, schema, job.metadata, twilio_sid) for job in claimed]
        done = queue.complete_queue_jobs(
            [j.id for j in claimed], [j.processing_token for j in claimed]
        )
        echo(
            f"3. a worker claimed {len(claimed)} jobs ({', '.join(sorted(channels))}), "
            f"sent them and completed {len(done or [])} in one call"
        )

        for status in ("delivered", "sent", "delivered", "read"):
            result = deliveries.update_sms_status_atomic(None, twilio_sid, status)[0]
            echo(
                f"4. Twilio says {status!r:12} -> SMS changed: {result.updated_sms!s:5} "
                f"delivery changed: {result.updated_delivery}"
            )

        tracking_id = conn.execute(
            "SELECT tracking_id FROM notification_deliveries "
            "WHERE event_id = %s AND channel = 'email'",
            (event_id,),
        ).fetchone()
        assert tracking_id is not None
        for event in ("delivered", "open", "click", "delivered", "bounce", "bounce"):
            changed = deliveries.record_email_event(tracking_id[0], event)
            now = conn.execute(
                "SELECT status FROM notification_deliveries WHERE tracking_id = %s", tracking_id
            ).fetchone()
            echo(
                f"5. email provider says {event!r:11} -> delivery changed: {changed!s:5} "
                f"status {now[0] if now else None}"
            )

        sms_delivery = conn.execute(
            "SELECT id FROM notification_deliveries WHERE event_id = %s AND channel = 'sms'",
            (event_id,),
        ).fetchone()
        assert sms_delivery is not None
        code = deliveries.create_sms_link(sms_delivery[0], "https://example.com/comments/1")
        target = deliveries.record_sms_link_click(code)
        echo(f"6. SMS link /{code} clicked -> redirect to {target}")

        for row in conn.execute(
            "SELECT channel, status FROM notification_deliveries WHERE event_id = %s ORDER BY 1",
            (event_id,),
        ):
            echo(f"   delivery {row[0]:7} is now {row[1]}")

        stale_job = queue.add_queue_job(user, "generate_daily_brief", {"briefDate": "2026-11-28"})
        [first] = queue.claim_pending_jobs(["generate_daily_brief"], batch_size=1)
        reset = queue.reset_stalled_jobs(stall_timeout=timedelta(microseconds=1))
        [second] = queue.claim_pending_jobs(["generate_daily_brief"], batch_size=1)
        late = queue.complete_queue_job(stale_job, processing_token=first.processing_token)
        current = queue.complete_queue_job(stale_job, processing_token=second.processing_token)
        echo(
            f"7. a stalled worker's job was reset ({reset}) and re-claimed: the old worker's "
            f"complete -> {late}, the new worker's -> {current}"
        )

        echo("8. channel performance over the last 7 days:")
        for channel in analytics.get_notification_channel_performance(interval="7 days"):
            echo(
                f"   {channel.channel:7} sent {channel.sent} delivered {channel.delivered} "
                f"opened {channel.opened} clicked {channel.clicked} failed {channel.failed} "
                f"delivery rate {_percent(channel.delivery_rate)}"
            )


def run_demo(dsn: str | None, schema: str | None, echo: Echo) -> None:
    """On a throwaway server unless ``dsn`` is given. In a given database the scenario
    gets its own schema (``notify_demo``), dropped at the end, because it claims and
    completes every pending send_notification job and resets stalled jobs: in a real
    install those would be someone's. A schema named explicitly is kept."""
    if dsn:
        _scenario(dsn, schema or DEMO_SCHEMA, echo, as_service_role=False)
        if schema is None:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(
                    psycopg.sql.SQL("DROP SCHEMA {} CASCADE").format(
                        psycopg.sql.Identifier(DEMO_SCHEMA)
                    )
                )
            echo(f"dropped schema {DEMO_SCHEMA} and everything the demo wrote")
        return
    with throwaway_postgres() as server:
        echo(f"started a throwaway PostgreSQL ({server.bindir}), Unix socket only")
        _scenario(server.dsn(), schema or "notify", echo, as_service_role=True)
    echo("stopped and removed the throwaway server")
