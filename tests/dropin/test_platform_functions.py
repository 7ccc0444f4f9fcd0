"""The seed platform's SMS, email, retention and analytics functions on a `--schema
public` install: semantics, this project's error rules (22023 naming the parameter,
nothing written), and the concurrency guarantees (daily limit, SMS dedup)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from tests.helpers.concurrency import released_together
from tests.helpers.postgrest import rpc

Conn = psycopg.Connection[Any]
TABLES = (
    "sms_messages", "queue_jobs", "sms_daily_counts", "sms_metrics", "sms_metrics_daily",
    "email_suppressions", "sms_links", "notification_deliveries",
)  # fmt: skip


def snapshot(conn: Conn) -> dict[str, list[str]]:
    return {
        table: [r[0] for r in conn.execute(f"SELECT t::text FROM public.{table} t ORDER BY 1")]
        for table in TABLES
    }


def one(conn: Conn, query: str, *params: object) -> tuple[Any, ...]:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return tuple(row)


def assert_refused(conn: Conn, function: str, args: dict[str, Any], parameter: str) -> None:
    before = snapshot(conn)
    with pytest.raises(psycopg.errors.InvalidParameterValue) as raised:
        rpc(conn, function, args)
    assert (raised.value.diag.message_primary or "").startswith(parameter)
    assert snapshot(conn) == before


# --- check_and_increment_sms_daily_limit ---------------------------------------------


def limit(conn: Conn, user: UUID, **more: Any) -> dict[str, Any]:
    (row,) = rpc(conn, "check_and_increment_sms_daily_limit", {"p_user_id": user, **more})
    return row


def test_daily_limit_counts_up_to_the_limit_then_refuses(public_db: Conn) -> None:
    user = uuid4()
    rows = [limit(public_db, user, p_default_limit=3) for _ in range(4)]
    assert [(r["allowed"], r["current_count"], r["limit"]) for r in rows] == [
        (True, 1, 3), (True, 2, 3), (True, 3, 3), (False, 3, 3)
    ]  # fmt: skip
    assert rows[0]["reason"] is None and rows[3]["reason"] == "Daily SMS limit reached (3/3)"
    assert limit(public_db, user, p_default_limit=5, p_increment=2)["current_count"] == 5
    assert not limit(public_db, user, p_default_limit=5)["allowed"]


def test_daily_limit_starts_again_on_a_new_utc_day_and_honours_a_user_limit(
    public_db: Conn,
) -> None:
    user = uuid4()
    today = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    assert limit(public_db, user, p_default_limit=1, p_now=today.isoformat())["allowed"]
    assert not limit(public_db, user, p_default_limit=1, p_now=today.isoformat())["allowed"]
    tomorrow = today + timedelta(hours=1)
    row = limit(public_db, user, p_default_limit=1, p_now=tomorrow.isoformat())
    assert (row["allowed"], row["current_count"], row["reset_at"]) == (True, 1, tomorrow)
    public_db.execute("UPDATE public.sms_daily_counts SET daily_limit = 4 WHERE user_id = %s",
                      (user,))  # fmt: skip
    row = limit(public_db, user, p_default_limit=1, p_now=tomorrow.isoformat())
    assert (row["allowed"], row["current_count"], row["limit"]) == (True, 2, 4)


def test_twenty_concurrent_calls_never_pass_the_limit(public_dsn: str, public_db: Conn) -> None:
    user = uuid4()
    results = released_together(
        public_dsn, [lambda conn: limit(conn, user, p_default_limit=7)] * 20
    )
    assert sum(r["allowed"] for r in results) == 7
    assert sorted(r["current_count"] for r in results if r["allowed"]) == list(range(1, 8))
    assert one(public_db, "SELECT sms_count FROM public.sms_daily_counts WHERE user_id = %s",
               user) == (7,)  # fmt: skip


@pytest.mark.parametrize(
    ("args", "parameter"),
    [
        ({"p_user_id": None}, "p_user_id"),
        ({"p_increment": 0}, "p_increment"),
        ({"p_default_limit": -1}, "p_default_limit"),
        ({"p_now": "infinity"}, "p_now"),
    ],
)
def test_daily_limit_bad_input(public_db: Conn, args: dict[str, Any], parameter: str) -> None:
    assert_refused(public_db, "check_and_increment_sms_daily_limit",
                   {"p_user_id": uuid4(), **args}, parameter)  # fmt: skip


# --- queue_sms_message -----------------------------------------------------------------


def queue_sms(conn: Conn, **args: Any) -> UUID:
    base = {"p_user_id": uuid4(), "p_phone_number": "+15550100", "p_message": "hello",
            "p_priority": "normal", "p_metadata": {}}  # fmt: skip
    message_id: UUID = rpc(conn, "queue_sms_message", {**base, **args})[0]["queue_sms_message"]
    return message_id


def test_queue_sms_message_writes_the_message_and_its_job(public_db: Conn) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    user = uuid4()
    message_id = queue_sms(
        public_db,
        p_user_id=user,
        p_priority="urgent",
        p_scheduled_for=later.isoformat(),
        p_metadata={"type": "welcome"},
    )
    status, content, metadata, job_id = one(
        public_db, "SELECT status, message_content, metadata, queue_job_id "
        "FROM public.sms_messages WHERE id = %s", message_id,
    )  # fmt: skip
    assert (status, content, metadata) == ("pending", "hello", {"type": "welcome"})
    job_type, job_user, priority, due, job_metadata = one(
        public_db, "SELECT job_type, user_id, priority, scheduled_for, metadata "
        "FROM public.queue_jobs WHERE id = %s", job_id,
    )  # fmt: skip
    assert (job_type, job_user, priority, due) == ("send_sms", user, 1, later)
    assert job_metadata["message_id"] == str(message_id)
    assert (job_metadata["phone_number"], job_metadata["type"]) == ("+15550100", "welcome")


def test_queue_sms_message_is_all_or_nothing(public_db: Conn) -> None:
    public_db.execute(
        "CREATE FUNCTION public.refuse_job() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'queue refused'; END $$"
    )
    public_db.execute("CREATE TRIGGER refuse BEFORE INSERT ON public.queue_jobs "
                      "FOR EACH ROW EXECUTE FUNCTION public.refuse_job()")  # fmt: skip
    before = snapshot(public_db)
    with pytest.raises(psycopg.errors.RaiseException):
        queue_sms(public_db)
    assert snapshot(public_db) == before


def test_queue_sms_message_dedups_sequentially_and_concurrently(
    public_dsn: str, public_db: Conn
) -> None:
    delivery = str(uuid4())
    first = queue_sms(public_db, p_metadata={"notification_delivery_id": delivery})
    assert queue_sms(public_db, p_metadata={"notification_delivery_id": delivery}) == first
    key = str(uuid4())
    ids = released_together(
        public_dsn, [lambda conn: queue_sms(conn, p_metadata={"dedup_key": key})] * 20
    )
    assert len(set(ids)) == 1
    assert one(public_db, "SELECT count(*) FROM public.sms_messages WHERE dedup_key = %s",
               key) == (1,)  # fmt: skip
    assert one(public_db, "SELECT count(*) FROM public.queue_jobs WHERE job_type = 'send_sms' "
               "AND metadata ->> 'dedup_key' = %s", key) == (1,)  # fmt: skip
    assert queue_sms(public_db) != queue_sms(public_db)  # no key: no dedup


@pytest.mark.parametrize(
    ("args", "parameter"),
    [
        ({"p_user_id": None}, "p_user_id"),
        ({"p_phone_number": " "}, "p_phone_number"),
        ({"p_phone_number": "+1" * 20}, "p_phone_number"),
        ({"p_message": ""}, "p_message"),
        ({"p_message": "x" * 1601}, "p_message"),
        ({"p_priority": "asap"}, "p_priority"),
        ({"p_metadata": [1]}, "p_metadata"),
        ({"p_metadata": {"dedup_key": "k" * 201}}, "p_metadata"),
        ({"p_scheduled_for": "infinity"}, "p_scheduled_for"),
    ],
)
def test_queue_sms_message_bad_input(public_db: Conn, args: dict[str, Any], parameter: str) -> None:
    base = {"p_user_id": uuid4(), "p_phone_number": "+15550100", "p_message": "hi",
            "p_priority": "normal", "p_scheduled_for": None, "p_metadata": {}}  # fmt: skip
    assert_refused(public_db, "queue_sms_message", {**base, **args}, parameter)


# --- create_tracking_link ------------------------------------------------------------


def test_tracking_link_is_shared_with_sms_link_clicks(public_db: Conn) -> None:
    delivery = one(public_db, "INSERT INTO public.notification_deliveries "
                   "(recipient_user_id, channel, status) VALUES (%s, 'sms', 'delivered') "
                   "RETURNING id", uuid4())[0]  # fmt: skip
    args = {"p_delivery_id": delivery, "p_destination_url": "https://build-os.com/p/1"}
    code = rpc(public_db, "create_tracking_link", args)[0]["create_tracking_link"]
    assert rpc(public_db, "create_tracking_link", args)[0]["create_tracking_link"] == code
    (click,) = rpc(public_db, "record_sms_link_click", {"p_short_code": code})
    assert click["record_sms_link_click"] == "https://build-os.com/p/1"
    assert one(public_db, "SELECT status FROM public.notification_deliveries WHERE id = %s",
               delivery) == ("clicked",)  # fmt: skip
    bad_url = {**args, "p_destination_url": "javascript:alert(1)"}
    assert_refused(public_db, "create_tracking_link", bad_url, "p_destination_url")
    assert_refused(public_db, "create_tracking_link",
                   {**args, "p_delivery_id": uuid4()}, "p_delivery_id")  # fmt: skip


# --- delete_old_completed_queue_jobs -----------------------------------------------------


def test_delete_old_completed_queue_jobs(public_db: Conn) -> None:
    ids = {
        name: one(public_db, "INSERT INTO public.queue_jobs (user_id, job_type, metadata, status, "
                  "completed_at) VALUES (gen_random_uuid(), %s, '{}', %s, now() - %s::interval) "
                  "RETURNING id", job_type, status, age)[0]
        for name, job_type, status, age in [
            ("old", "a", "completed", "40 days"), ("older", "a", "completed", "50 days"),
            ("other_type", "b", "completed", "40 days"), ("recent", "a", "completed", "1 day"),
            ("failed", "a", "failed", "40 days"), ("named", "a", "completed", "45 days"),
        ]
    }  # fmt: skip
    public_db.execute("INSERT INTO public.sms_messages (user_id, phone_number, message_content, "
                      "queue_job_id) VALUES (gen_random_uuid(), '+1555', 'x', %s)",
                      (ids["named"],))  # fmt: skip
    call = {"p_retention_days": 30, "p_batch_size": 1, "p_job_types": ["a"]}
    (first,) = rpc(public_db, "delete_old_completed_queue_jobs", call)
    assert first["deleted_count"] == 1
    assert first["oldest_deleted_completed_at"] == first["newest_deleted_completed_at"]
    (second,) = rpc(public_db, "delete_old_completed_queue_jobs", {**call, "p_batch_size": 10})
    assert second["deleted_count"] == 1 and second["oldest_deleted_completed_at"] is not None
    assert rpc(public_db, "delete_old_completed_queue_jobs", {"p_retention_days": 0}) == [
        {"deleted_count": 0, "oldest_deleted_completed_at": None,
         "newest_deleted_completed_at": None}
    ]  # fmt: skip
    left = {r[0] for r in public_db.execute("SELECT id FROM public.queue_jobs")}
    assert left == {ids[n] for n in ("other_type", "recent", "failed", "named")}
    bad: list[tuple[dict[str, Any], str]] = [
        ({"p_retention_days": -1}, "p_retention_days"),
        ({"p_batch_size": 0}, "p_batch_size"),
        ({"p_job_types": []}, "p_job_types"),
    ]
    for args, parameter in bad:
        assert_refused(public_db, "delete_old_completed_queue_jobs", args, parameter)


# --- SMS metrics ---------------------------------------------------------------------


def metric(conn: Conn, user: UUID | None, metric_type: str, value: float, **more: Any) -> None:
    rpc(conn, "record_sms_metric",
        {"p_metric_date": date.today().isoformat(), "p_metric_hour": None, "p_user_id": user,
         "p_metric_type": metric_type, "p_metric_value": value, **more})  # fmt: skip


def test_metrics_accumulate_and_summarise(public_dsn: str, public_db: Conn) -> None:
    first, second = uuid4(), uuid4()
    released_together(public_dsn, [lambda conn: metric(conn, first, "sent_count", 1)] * 10)
    metric(public_db, first, "delivered_count", 8, p_metadata={"a": 1})
    metric(public_db, first, "delivered_count", 1, p_metadata={"b": 2})
    metric(public_db, first, "avg_delivery_time_ms", 900)
    metric(public_db, second, "sent_count", 2)
    metric(public_db, None, "sms_cost_usd", 0.25)
    metric(public_db, first, "sent_count", 5, p_metric_hour=9)  # hourly: not in the day
    assert one(
        public_db,
        "SELECT metric_value, metadata FROM public.sms_metrics "
        "WHERE user_id = %s AND metric_type = 'delivered_count'",
        first,
    ) == (9, {"a": 1, "b": 2})
    today, week_ago = date.today(), date.today() - timedelta(days=7)
    window = {"p_start_date": week_ago.isoformat(), "p_end_date": today.isoformat()}
    assert rpc(public_db, "get_sms_daily_metrics", window) == []  # not refreshed yet
    rpc(public_db, "refresh_sms_metrics_daily", {})
    (day,) = rpc(public_db, "get_sms_daily_metrics", window)
    assert (day["metric_date"], day["sent_count"], day["delivered_count"]) == (today, 12, 9)
    assert day["avg_delivery_time_ms"] == 100 and day["delivery_success_rate"] == 75
    assert (day["sms_cost_usd"], day["active_users"], day["llm_success_rate"]) == (0.25, 2, None)
    (mine,) = rpc(public_db, "get_user_sms_metrics", {"p_user_id": first, "p_days": 7})
    assert (mine["sent_count"], mine["delivered_count"], mine["delivery_rate"]) == (10, 9, 90)
    public_db.execute("DELETE FROM public.sms_metrics")
    rpc(public_db, "refresh_sms_metrics_daily", {})
    assert rpc(public_db, "get_sms_daily_metrics", window) == []


@pytest.mark.parametrize(
    ("args", "parameter"),
    [
        ({"p_metric_date": None}, "p_metric_date"),
        ({"p_metric_hour": 24}, "p_metric_hour"),
        ({"p_metric_type": ""}, "p_metric_type"),
        ({"p_metric_type": "t" * 101}, "p_metric_type"),
        ({"p_metric_value": None}, "p_metric_value"),
        ({"p_metric_value": "NaN"}, "p_metric_value"),
        ({"p_metadata": "x"}, "p_metadata"),
    ],
)
def test_record_sms_metric_bad_input(public_db: Conn, args: dict[str, Any], parameter: str) -> None:
    base: dict[str, Any] = {"p_metric_date": date.today().isoformat(), "p_metric_hour": None,
            "p_user_id": uuid4(), "p_metric_type": "sent_count", "p_metric_value": 1,
            "p_metadata": {}}  # fmt: skip
    assert_refused(public_db, "record_sms_metric", {**base, **args}, parameter)


def test_metric_readers_bad_input(public_db: Conn) -> None:
    backwards = {"p_start_date": "2026-02-01", "p_end_date": "2026-01-01"}
    assert_refused(public_db, "get_sms_daily_metrics", backwards, "p_end_date")
    assert_refused(public_db, "get_user_sms_metrics", {"p_user_id": uuid4(), "p_days": 0},
                   "p_days")  # fmt: skip


# --- email suppressions ----------------------------------------------------------------


def suppress(conn: Conn, email: str, scope: str, **more: Any) -> UUID:
    args = {"p_email": email, "p_scope": scope, "p_reason": "unsubscribe",
            "p_source": "email_link", **more}  # fmt: skip
    suppression: UUID = rpc(conn, "upsert_email_suppression", args)[0]["upsert_email_suppression"]
    return suppression


def suppressed(conn: Conn, email: str, scope: str) -> bool:
    args = {"p_email": email, "p_scope": scope}
    answer: bool = rpc(conn, "is_email_suppressed", args)[0]["is_email_suppressed"]
    return answer


def test_email_suppression_normalises_widens_and_merges(public_db: Conn) -> None:
    first = suppress(public_db, " Ann@Example.COM ", "lifecycle", p_metadata={"a": 1})
    assert suppressed(public_db, "ann@example.com", "lifecycle")
    assert not suppressed(public_db, "ann@example.com", "marketing")
    assert suppress(public_db, "ann@example.com", "lifecycle", p_metadata={"b": 2}) == first
    assert one(public_db, "SELECT scope, metadata FROM public.email_suppressions") == (
        "lifecycle", {"a": 1, "b": 2})  # fmt: skip
    assert suppress(public_db, "ANN@example.com", "daily_brief", p_reason="complaint") == first
    assert one(public_db, "SELECT scope, reason FROM public.email_suppressions") == (
        "all", "complaint")  # fmt: skip
    assert suppressed(public_db, "ann@example.com", "marketing")
    assert not suppressed(public_db, "bob@example.com", "all")
    refusals: list[tuple[dict[str, Any], str]] = [
        ({"p_email": " "}, "p_email"),
        ({"p_scope": "everything"}, "p_scope"),
        ({"p_reason": "bored"}, "p_reason"),
        ({"p_source": "carrier_pigeon"}, "p_source"),
        ({"p_metadata": [1]}, "p_metadata"),
    ]
    for args, parameter in refusals:
        base = {"p_email": "c@example.com", "p_scope": "all", "p_reason": "manual",
                "p_source": "admin", "p_metadata": {}}  # fmt: skip
        assert_refused(public_db, "upsert_email_suppression", {**base, **args}, parameter)
    assert_refused(public_db, "is_email_suppressed", {"p_email": "a@b.c", "p_scope": "x"},
                   "p_scope")  # fmt: skip


# --- admin analytics -------------------------------------------------------------------


def delivery(conn: Conn, status: str, age: str, channel: str = "email", **columns: Any) -> UUID:
    names = ", ".join(["recipient_user_id", "channel", "status", "created_at", *columns])
    marks = ", ".join(["%s", "%s", "%s", "now() - %s::interval"] + ["%s"] * len(columns))
    delivery_id: UUID = one(conn, f"INSERT INTO public.notification_deliveries ({names}) "
                            f"VALUES ({marks}) RETURNING id",
                            uuid4(), channel, status, age, *columns.values())[0]  # fmt: skip
    return delivery_id


def test_overview_metrics_current_and_previous_windows(public_db: Conn) -> None:
    for status in ("sent", "delivered", "opened", "failed"):
        delivery(public_db, status, "1 hour")
    delivery(public_db, "clicked", "30 hours", clicked_at=datetime.now(UTC))
    (current,) = rpc(public_db, "get_notification_overview_metrics", {"p_interval": "24 hours"})
    # this project's funnel: 3 reached sent, 2 delivered, none has opened_at
    assert current == {"total_sent": 4, "delivery_success_rate": Decimal("66.67"),
                       "avg_open_rate": Decimal("0.00"), "avg_click_rate": None}  # fmt: skip
    (previous,) = rpc(public_db, "get_notification_overview_metrics",
                      {"p_interval": "24 hours", "p_offset": "24 hours"})  # fmt: skip
    assert (previous["total_sent"], previous["avg_click_rate"]) == (1, 100)
    assert rpc(public_db, "get_notification_overview_metrics",
               {"p_interval": "24 hours", "p_offset": "0 hours"}) == [current]  # fmt: skip
    for args, parameter in [
        ({"p_interval": "soon"}, "p_interval"),
        ({"p_interval": "1 day", "p_offset": "-1 day"}, "p_offset"),
        ({"p_interval": "1 day", "p_offset": "later"}, "p_offset"),
    ]:
        assert_refused(public_db, "get_notification_overview_metrics", args, parameter)


def test_failed_deliveries_lists_failures_newest_first(public_db: Conn) -> None:
    older = delivery(public_db, "failed", "2 hours", last_error="smtp 550",
                     channel_identifier="a@example.com")  # fmt: skip
    newer = delivery(public_db, "bounced", "1 hour", channel="sms", channel_identifier="+1555")
    delivery(public_db, "delivered", "1 hour")
    delivery(public_db, "failed", "3 days")
    rows = rpc(public_db, "get_notification_failed_deliveries",
               {"p_interval": "24 hours", "p_limit": 100})  # fmt: skip
    assert [r["delivery_id"] for r in rows] == [newer, older]
    assert [r["recipient_email"] for r in rows] == [None, "a@example.com"]
    assert rows[1]["last_error"] == "smtp 550"
    assert len(rpc(public_db, "get_notification_failed_deliveries", {"p_limit": 1})) == 1
    assert_refused(public_db, "get_notification_failed_deliveries", {"p_limit": 0}, "p_limit")


def test_active_subscriptions_one_row_per_subscribed_user(public_db: Conn) -> None:
    busy, quiet, inactive = uuid4(), uuid4(), uuid4()
    public_db.execute(
        "INSERT INTO public.notification_subscriptions (user_id, event_type, is_active) "
        "VALUES (%s, 'b', true), (%s, 'a', true), (%s, 'a', true), (%s, 'a', false)",
        (busy, busy, quiet, inactive),
    )
    public_db.execute("INSERT INTO public.notification_preferences (user_id, channel, enabled) "
                      "VALUES (%s, 'sms', false)", (busy,))  # fmt: skip
    public_db.execute("INSERT INTO public.notification_deliveries (recipient_user_id, channel) "
                      "VALUES (%s, 'email')", (busy,))  # fmt: skip
    rows = rpc(public_db, "get_notification_active_subscriptions", {})
    assert [(r["user_id"], r["subscribed_events"]) for r in rows] == [
        (busy, ["a", "b"]), (quiet, ["a"])
    ]  # fmt: skip
    assert (rows[0]["sms_enabled"], rows[0]["email_enabled"], rows[1]["sms_enabled"]) == (
        False, True, True)  # fmt: skip
    assert rows[0]["last_notification_sent"] is not None
    assert rows[1]["last_notification_sent"] is None
