"""Analytics RPCs against hand-built fixtures whose expected numbers are worked out by
hand below, plus argument validation, grants and the "no rate above 100" guarantee."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any
from uuid import UUID

import psycopg
import pytest

from notify_sql.errors import InvalidArgument
from notify_sql.rpc import call_value
from notify_sql.wrappers import Analytics, AsyncAnalytics
from notify_sql.wrappers.analytics import GetNotificationChannelPerformanceRow

Row = GetNotificationChannelPerformanceRow

USER_A = UUID(int=0xA)
USER_B = UUID(int=0xB)
USER_C = UUID(int=0xC)
USER_D = UUID(int=0xD)
EVENTS = {name: UUID(int=0xE0 + n) for n, name in enumerate(["E1", "E2", "E3", "E4", "E5", "E6"])}


def ago(**delta: float) -> timedelta:
    return timedelta(**delta)


# (event, created ago, event_type)
EVENT_ROWS = [
    ("E1", ago(hours=3), "task.due"),
    ("E2", ago(hours=3), "task.due"),
    ("E3", ago(hours=3), "brief.ready"),
    ("E4", ago(days=1), "brief.ready"),  # no deliveries
    ("E5", ago(days=40), "old.event"),  # outside every window
    ("E6", ago(days=8), "task.due"),  # outside 7 days, inside 30
]

# name -> (channel, status, event, recipient, created ago, offsets after created_at in
# seconds for sent_at / delivered_at / opened_at / clicked_at / failed_at, last_error)
Delivery = tuple[str, str, str | None, UUID, timedelta, dict[str, float], str | None]
DELIVERIES: dict[str, Delivery] = {
    "email1": ("email", "clicked", "E1", USER_A, ago(hours=2),
               {"sent_at": 2, "delivered_at": 3, "opened_at": 60, "clicked_at": 120}, None),
    "email2": ("email", "opened", "E1", USER_B, ago(hours=2),
               {"sent_at": 4, "delivered_at": 5, "opened_at": 30}, None),
    "email3": ("email", "delivered", "E2", USER_A, ago(hours=2),
               {"sent_at": 6.001, "delivered_at": 8}, None),
    "email4": ("email", "sent", None, USER_A, ago(hours=2), {}, None),  # sent, no sent_at
    # Delivered, then bounced; its opened_at must not count (it is not "sent" any more).
    "email5": ("email", "bounced", "E3", USER_C, ago(hours=2),
               {"sent_at": 1, "delivered_at": 2, "opened_at": 10, "failed_at": 3600},
               "550 mailbox unavailable"),
    "email6": ("email", "cancelled", "E1", USER_B, ago(hours=2), {}, None),
    "email7": ("email", "delivered", "E6", USER_D, ago(days=8),
               {"sent_at": 3, "delivered_at": 5}, None),
    "sms1": ("sms", "delivered", "E2", USER_A, ago(hours=3),
             {"sent_at": 1.5, "delivered_at": 10.005}, None),
    "sms2": ("sms", "failed", None, USER_B, ago(hours=3), {"failed_at": 9000},
             "30003 unreachable handset"),
    # A click reported alone (no opened_at): counts as opened and clicked.
    "sms3": ("sms", "sent", "E3", USER_C, ago(hours=3), {"sent_at": 2.5, "clicked_at": 100},
             None),
    "sms4": ("sms", "pending", None, USER_C, ago(hours=3), {}, None),
    "sms5": ("sms", "delivered", None, USER_D, ago(days=2),
             {"sent_at": 1, "delivered_at": 3}, None),
    # push: nothing countable in the last 7 days (an empty channel).
    "push1": ("push", "cancelled", None, USER_A, ago(hours=1), {}, None),
    "push2": ("push", "delivered", None, USER_A, ago(days=10),
              {"sent_at": 1, "delivered_at": 2}, None),
    "push3": ("push", "failed", None, USER_A, ago(days=10), {"failed_at": 5}, "expired token"),
    # in_app: no rows at all.
}  # fmt: skip

# (user, channel, phone, verified, enabled, opted_out)
PREFERENCES = [
    (UUID(int=1), "sms", "+15550001", True, True, False),  # reachable
    (UUID(int=2), "sms", "+15550002", True, False, False),  # verified, sms disabled
    (UUID(int=3), "sms", "+15550003", True, True, True),  # verified, opted out
    (UUID(int=4), "sms", "+15550004", False, True, False),  # not verified
    (UUID(int=5), "sms", None, False, True, False),  # no phone
    (UUID(int=6), "email", None, False, True, False),  # not an sms row
]


def insert_fixtures(db: psycopg.Connection[Any]) -> datetime:
    row = db.execute("SELECT now()").fetchone()
    assert row is not None
    now: datetime = row[0]
    with db.transaction():
        for name, created, event_type in EVENT_ROWS:
            db.execute(
                "INSERT INTO notify.notification_events (id, event_type, created_at) "
                "VALUES (%s, %s, %s)",
                (EVENTS[name], event_type, now - created),
            )
        for n, (channel, status, event, user, created, offsets, error) in enumerate(
            DELIVERIES.values()
        ):
            created_at = now - created
            times = {column: created_at + timedelta(seconds=s) for column, s in offsets.items()}
            db.execute(
                "INSERT INTO notify.notification_deliveries (id, channel, status, event_id, "
                " recipient_user_id, created_at, updated_at, sent_at, delivered_at, opened_at,"
                " clicked_at, failed_at, last_error) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (UUID(int=0xD000 + n), channel, status, event and EVENTS[event], user,
                 created_at, created_at, times.get("sent_at"), times.get("delivered_at"),
                 times.get("opened_at"), times.get("clicked_at"), times.get("failed_at"),
                 error),
            )  # fmt: skip
        for user, channel, phone, verified, enabled, opted_out in PREFERENCES:
            db.execute(
                "INSERT INTO notify.notification_preferences "
                "(user_id, channel, phone_number, phone_verified, enabled, opted_out) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (user, channel, phone, verified, enabled, opted_out),
            )
    return now


def delivery_id(name: str) -> UUID:
    return UUID(int=0xD000 + list(DELIVERIES).index(name))


@pytest.fixture
def analytics(db: psycopg.Connection[Any], service_db: psycopg.Connection[Any]) -> Analytics:
    insert_fixtures(db)
    return Analytics(service_db)


def D(value: str) -> Decimal:
    return Decimal(value)


def test_channel_performance_golden(analytics: Analytics) -> None:
    assert analytics.get_notification_channel_performance(interval="7 days") == [
        # email: total 5 (email6 cancelled), sent 1-4, delivered 1-3, opened 1-2 (email5
        # bounced: its opened_at does not count), clicked 1, failed 5; avg over sent_at
        # of 1, 2, 3, 5: (2000 + 4000 + 6001 + 1000) / 4 = 3250.25.
        GetNotificationChannelPerformanceRow("email", 5, 4, 3, 2, 1, 1,
                           D("80.00"), D("75.00"), D("50.00"), D("50.00"), D("3250.25")),
        # sms: total 5, sent 1, 3, 5, delivered 1, 5, opened/clicked 3, failed 2;
        # avg (1500 + 2500 + 1000) / 3 = 1666.67.
        GetNotificationChannelPerformanceRow("sms", 5, 3, 2, 1, 1, 1,
                           D("75.00"), D("66.67"), D("33.33"), D("100.00"), D("1666.67")),
        # No deliveries: zero counts, NULL rates and average.
        Row("in_app", 0, 0, 0, 0, 0, 0, None, None, None, None, None),
        # Only a cancelled delivery in the window (the rest is 10 days old).
        Row("push", 0, 0, 0, 0, 0, 0, None, None, None, None, None),
    ]  # fmt: skip


def test_channel_performance_window_is_the_argument(analytics: Analytics) -> None:
    by_channel = {
        row.channel: row
        for row in analytics.get_notification_channel_performance(interval="30 days")
    }
    # push2 (delivered) and push3 (failed) are 10 days old.
    assert (by_channel["push"].total_sent, by_channel["push"].sent) == (2, 1)
    assert by_channel["push"].success_rate == D("50.00")
    # email7 is 8 days old.
    assert by_channel["email"].total_sent == 6
    hour = {
        row.channel: row.total_sent
        for row in analytics.get_notification_channel_performance(interval="150 minutes")
    }
    assert hour == {"email": 5, "sms": 0, "push": 0, "in_app": 0}


def test_event_performance_golden(analytics: Analytics) -> None:
    rows = analytics.get_notification_event_performance(interval="30 days")
    assert [(r.event_type, r.total_events, r.total_deliveries, r.unique_subscribers,
             r.avg_delivery_time_seconds, r.open_rate, r.click_rate) for r in rows] == [
        # E1, E2, E6; deliveries email1, email2, email6 (cancelled), email3, sms1, email7;
        # recipients A, B, D; seconds to sent (2 + 4 + 6.001 + 1.5 + 3) / 5 = 3.3002;
        # all five with a status are sent, email1 and email2 opened, email1 clicked.
        ("task.due", 3, 6, 3, D("3.30"), D("40.00"), D("50.00")),
        # E3, E4 (no deliveries); sms3 (sent, clicked only), email5 (bounced).
        ("brief.ready", 2, 2, 1, D("1.75"), D("100.00"), D("100.00")),
    ]  # fmt: skip
    seven = {r.event_type: (r.total_events, r.total_deliveries) for r in
             analytics.get_notification_event_performance(interval="7 days")}  # fmt: skip
    assert seven == {"task.due": (2, 5), "brief.ready": (2, 2)}


def test_sms_stats_golden(analytics: Analytics) -> None:
    stats = analytics.get_sms_notification_stats()[0]
    assert (stats.total_users_with_phone, stats.users_phone_verified,
            stats.users_sms_enabled, stats.users_opted_out) == (4, 3, 1, 1)  # fmt: skip
    assert (stats.phone_verification_rate, stats.sms_adoption_rate, stats.opt_out_rate) == (
        D("75.00"), D("33.33"), D("25.00"))  # fmt: skip
    # Last 24 hours: sms1-sms4 (sms5 is 2 days old). Sent: sms1, sms3; delivered: sms1.
    # Seconds to delivered: sms1 only, 10.005 rounds half away from zero to 10.01.
    assert stats.total_sms_sent_24h == 4
    assert stats.sms_delivery_rate_24h == D("50.00")
    assert stats.avg_sms_delivery_time_seconds == D("10.01")


def test_sms_delivery_figures_match_the_channel_row(analytics: Analytics) -> None:
    stats = analytics.get_sms_notification_stats(interval="7 days")[0]
    (sms,) = [
        row
        for row in analytics.get_notification_channel_performance(interval="7 days")
        if row.channel == "sms"
    ]
    assert (stats.total_sms_sent_24h, stats.sms_delivery_rate_24h) == (
        sms.total_sent, sms.delivery_rate)  # fmt: skip
    # sms1 and sms5: (10.005 + 3) / 2 = 6.5025
    assert stats.avg_sms_delivery_time_seconds == D("6.50")


def test_overview_compares_with_the_previous_period(analytics: Analytics) -> None:
    current, previous = analytics.get_notification_overview(interval="7 days")
    assert current.period == "current" and previous.period == "previous"
    assert previous.period_end == current.period_start
    assert current.period_end and current.period_start and previous.period_start
    assert current.period_end - current.period_start == timedelta(days=7)
    assert current.period_start - previous.period_start == timedelta(days=7)
    # email + sms of test_channel_performance_golden.
    assert (current.total_sent, current.sent, current.delivered, current.opened,
            current.clicked, current.failed) == (10, 7, 5, 3, 2, 2)  # fmt: skip
    assert (current.success_rate, current.delivery_rate, current.open_rate,
            current.click_rate) == (D("77.78"), D("71.43"), D("42.86"), D("66.67"))  # fmt: skip
    # (2000 + 4000 + 6001 + 1000 + 1500 + 2500 + 1000) / 7
    assert current.avg_delivery_time_ms == D("2571.57")
    # delivered_at - created_at: (3 + 5 + 8 + 2 + 10.005 + 3) / 6 = 5.1675
    assert current.avg_time_to_delivered_seconds == D("5.17")
    # 7 to 14 days ago: email7 (delivered), push2 (delivered), push3 (failed).
    assert (previous.total_sent, previous.sent, previous.delivered, previous.opened,
            previous.clicked, previous.failed) == (3, 2, 2, 0, 0, 1)  # fmt: skip
    assert (previous.success_rate, previous.delivery_rate, previous.open_rate,
            previous.click_rate) == (D("66.67"), D("100.00"), D("0.00"), None)  # fmt: skip
    assert previous.avg_delivery_time_ms == D("2000.00")
    assert previous.avg_time_to_delivered_seconds == D("3.50")


def test_channel_performance_sums_to_the_overview(analytics: Analytics) -> None:
    for window in ["1 hour", "1 day", "30 days"]:
        rows = analytics.get_notification_channel_performance(interval=window)
        current, _ = analytics.get_notification_overview(interval=window)
        assert sum(r.total_sent or 0 for r in rows) == current.total_sent
        assert sum(r.failed or 0 for r in rows) == current.failed


def test_timeline_is_gapless_and_adds_up(analytics: Analytics) -> None:
    buckets = analytics.get_notification_delivery_timeline(interval="3 days", granularity="day")
    starts = [b.bucket_start for b in buckets if b.bucket_start is not None]
    assert [
        b.time_bucket for b in buckets if b.bucket_start is not None
    ] == starts  # the seed platform's name
    assert all(later - earlier == timedelta(days=1) for earlier, later in pairwise(starts))
    assert len(buckets) in (3, 4)  # 4 unless now() is exactly midnight
    current, _ = analytics.get_notification_overview(interval="3 days")
    assert sum(b.total_sent or 0 for b in buckets) == current.total_sent == 10
    assert sum(b.delivered or 0 for b in buckets) == current.delivered
    hourly = analytics.get_notification_delivery_timeline(
        interval="6 hours", granularity="hour", channel="sms"
    )
    assert len(hourly) in (6, 7)
    assert all(b.bucket_start is not None and b.bucket_start.minute == 0 for b in hourly)
    # sms1-sms4, 3 hours ago, in one bucket; every other bucket is empty.
    assert sorted(b.total_sent or 0 for b in hourly)[-2:] == [0, 4]
    assert [b.success_rate for b in hourly if b.total_sent == 0] == [None] * (len(hourly) - 1)


def test_recent_failures_latest_first_with_errors(analytics: Analytics) -> None:
    failures = analytics.get_recent_failed_deliveries()
    # push3 failed 10 days ago: outside the default 7-day window.
    assert [(f.delivery_id, f.status, f.last_error, f.event_type) for f in failures] == [
        (delivery_id("sms2"), "failed", "30003 unreachable handset", None),  # 30 min ago
        (delivery_id("email5"), "bounced", "550 mailbox unavailable", "brief.ready"),  # 1 h
    ]
    assert [f.delivery_id for f in analytics.get_recent_failed_deliveries(limit=1)] == [
        delivery_id("sms2")
    ]
    assert len(analytics.get_recent_failed_deliveries(limit=10, interval="30 days")) == 3


def test_rates_never_exceed_100_on_contradictory_rows(
    db: psycopg.Connection[Any], service_db: psycopg.Connection[Any]
) -> None:
    """Rows a naive count (opened = opened_at present, sent = status 'sent') would turn
    into rates above 100: bounced after delivery and open, failed with an open, clicks
    without opens, a clicked status with no timestamps."""
    rows = [
        ("sent", None, "now()"),  # clicked alone
        ("bounced", "now()", "now()"),
        ("bounced", "now()", None),
        ("failed", "now()", "now()"),
        ("clicked", None, None),
    ]
    for status, opened_at, clicked_at in rows:
        db.execute(
            "INSERT INTO notify.notification_deliveries "
            f"(recipient_user_id, channel, status, opened_at, clicked_at) "
            f"VALUES (gen_random_uuid(), 'email', %s, {opened_at or 'NULL'}, "
            f"{clicked_at or 'NULL'})",
            (status,),
        )
    (email,) = [
        r
        for r in Analytics(service_db).get_notification_channel_performance()
        if r.channel == "email"
    ]
    # sent: the sent row and the clicked row; opened = clicked = the sent row only.
    assert (email.sent, email.delivered, email.opened, email.clicked, email.failed) == (
        2, 1, 1, 1, 3)  # fmt: skip
    assert (email.success_rate, email.delivery_rate, email.open_rate, email.click_rate) == (
        D("40.00"), D("50.00"), D("50.00"), D("100.00"))  # fmt: skip


# --- validation --------------------------------------------------------------------

BAD_INTERVALS = ["garbage", "7 dayz", "", "-1 day", "1 day ago", "0", "0 days",
                 "1 day -25 hours", "100000000 years", "P", None]  # fmt: skip

WINDOWED: dict[str, Callable[[Analytics, Any], object]] = {
    "channel_performance": lambda a, window: a.get_notification_channel_performance(
        interval=window
    ),
    "event_performance": lambda a, window: a.get_notification_event_performance(interval=window),
    "sms_stats": lambda a, window: a.get_sms_notification_stats(interval=window)[0],
    "overview": lambda a, window: a.get_notification_overview(interval=window),
    "timeline": lambda a, window: a.get_notification_delivery_timeline(
        interval=window, granularity="hour"
    ),
    "recent_failures": lambda a, window: a.get_recent_failed_deliveries(limit=10, interval=window),
}


@pytest.mark.parametrize("call", WINDOWED.values(), ids=list(WINDOWED))
@pytest.mark.parametrize("window", BAD_INTERVALS)
def test_bad_interval_raises_22023_naming_p_interval(
    service_db: psycopg.Connection[Any], call: Callable[[Analytics, Any], object], window: Any
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        call(Analytics(service_db), window)
    assert raised.value.parameter == "p_interval"
    assert isinstance(raised.value.__cause__, psycopg.Error)
    assert raised.value.__cause__.sqlstate == "22023"


@pytest.mark.parametrize("window", ["1 second", "7 days", "1 mon", "P2DT3H", "90 days"])
def test_good_intervals_are_accepted(service_db: psycopg.Connection[Any], window: str) -> None:
    assert len(Analytics(service_db).get_notification_channel_performance(interval=window)) == 4


@pytest.mark.parametrize(
    ("granularity", "channel", "parameter"),
    [
        ("week", None, "p_granularity"),
        ("HOUR", None, "p_granularity"),
        (None, None, "p_granularity"),
        ("hour", "fax", "p_channel"),
    ],
)
def test_bad_timeline_arguments(
    service_db: psycopg.Connection[Any], granularity: Any, channel: str | None, parameter: str
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        Analytics(service_db).get_notification_delivery_timeline(
            interval="1 day", granularity=granularity, channel=channel
        )
    assert raised.value.parameter == parameter


@pytest.mark.parametrize(
    ("args", "parameter"),
    [
        ({"p_since": "-infinity", "p_granularity": "hour"}, "p_since"),
        ({"p_since": "infinity"}, "p_since"),
        ({"p_since": "0001-01-01 00:00:00+00", "p_granularity": "hour"}, "p_granularity"),
    ],
    ids=["minus-infinity-hourly", "infinity", "year-1-hourly"],
)
def test_funnel_windows_that_would_be_unbounded_are_refused(
    service_db: psycopg.Connection[Any], args: dict[str, object], parameter: str
) -> None:
    """Once unbounded work: an hourly grid from -infinity never ends, from year 1 it has
    17 million buckets per channel, and p_since 'infinity' returned a bucket clients
    cannot load. The internal funnel refuses them, naming the parameter."""
    service_db.execute("SET statement_timeout = '3s'")
    with pytest.raises(InvalidArgument) as raised:
        call_value(service_db, "analytics_delivery_funnel", args)
    assert raised.value.parameter == parameter


def test_timeline_grid_is_bounded(service_db: psycopg.Connection[Any]) -> None:
    analytics = Analytics(service_db)
    assert len(
        analytics.get_notification_delivery_timeline(interval="400 days", granularity="hour")
    ) in (9600, 9601)
    for window, granularity in [("1000 years", "hour"), ("500 days", "hour"), ("30 years", "day")]:
        with pytest.raises(InvalidArgument) as raised:
            analytics.get_notification_delivery_timeline(interval=window, granularity=granularity)
        assert raised.value.parameter == "p_granularity"


@pytest.mark.parametrize(
    ("since", "until", "parameter"),
    [("-infinity", None, "p_since"), ("infinity", None, "p_since"), (None, None, "p_since"),
     ("2020-01-01", "infinity", "p_until")],
)  # fmt: skip
def test_funnel_bounds_must_be_finite(
    service_db: psycopg.Connection[Any], since: str | None, until: str | None, parameter: str
) -> None:
    with pytest.raises(psycopg.Error) as raised:
        service_db.execute(
            "SELECT * FROM notify.analytics_delivery_funnel(%s::timestamptz, %s::timestamptz)",
            (since, until),
        )
    assert raised.value.sqlstate == "22023"
    assert (raised.value.diag.message_primary or "").startswith(f"{parameter}:")


@pytest.mark.parametrize("limit", [0, -1, 1001, None])
def test_bad_failure_limit(service_db: psycopg.Connection[Any], limit: Any) -> None:
    with pytest.raises(InvalidArgument) as raised:
        Analytics(service_db).get_recent_failed_deliveries(limit=limit)
    assert raised.value.parameter == "p_limit"


# --- access and plumbing -------------------------------------------------------------

ANALYTICS_FUNCTIONS = [
    "get_notification_channel_performance(text)",
    "get_notification_event_performance(text)",
    "get_sms_notification_stats(text)",
    "get_notification_overview(text)",
    "get_notification_delivery_timeline(text, text, text)",
    "get_recent_failed_deliveries(integer, text)",
    "check_window(text, text)",
    "analytics_delivery_funnel(timestamptz, timestamptz, text, boolean, text)",
]


@pytest.mark.parametrize("signature", ANALYTICS_FUNCTIONS)
def test_only_service_role_may_execute(db: psycopg.Connection[Any], signature: str) -> None:
    allowed = {
        role: db.execute(
            "SELECT has_function_privilege(%s, %s, 'EXECUTE')", (role, f"notify.{signature}")
        ).fetchone()
        for role in ["service_role", "authenticated", "anon", "public"]
    }
    assert allowed == {
        "service_role": (True,),
        "authenticated": (False,),
        "anon": (False,),
        "public": (False,),
    }


def test_window_scans_have_their_indexes(db: psycopg.Connection[Any]) -> None:
    """The functions reach their window through these; if one goes, analytics calls
    scan the whole table (see 0003_analytics.sql and BENCHMARKS.md)."""
    indexes = {
        (row[0], row[1].split(" USING ", 1)[1])
        for row in db.execute(
            "SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = 'notify' "
            "AND tablename IN ('notification_deliveries', 'notification_events')"
        )
    }
    assert {
        ("notification_deliveries", "btree (created_at)"),
        ("notification_deliveries", "btree (channel, created_at)"),
        ("notification_deliveries", "btree (event_id)"),
        ("notification_events", "btree (created_at)"),
    } <= indexes


async def test_async_wrappers_return_the_same_rows(
    dsn: str, db: psycopg.Connection[Any], analytics: Analytics
) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SET ROLE service_role")
        remote = AsyncAnalytics(conn)
        assert (
            await remote.get_notification_channel_performance()
            == analytics.get_notification_channel_performance()
        )
        assert (
            await remote.get_notification_event_performance()
            == analytics.get_notification_event_performance()
        )
        assert (await remote.get_sms_notification_stats())[
            0
        ] == analytics.get_sms_notification_stats()[0]
        current = (await remote.get_notification_overview())[0]
        expected = analytics.get_notification_overview()[0]
        # Each call has its own now(), so only the window edges may differ.
        same_edges = replace(
            current, period_start=expected.period_start, period_end=expected.period_end
        )
        assert same_edges == expected
        assert (
            len(
                await remote.get_notification_delivery_timeline(
                    interval="2 days", granularity="hour"
                )
            )
            >= 48
        )
        assert (
            await remote.get_recent_failed_deliveries() == analytics.get_recent_failed_deliveries()
        )
        with pytest.raises(InvalidArgument):
            await remote.get_notification_channel_performance(interval="soon")
