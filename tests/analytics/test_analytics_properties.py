"""Differential test: for random deliveries, events and preferences, every analytics
figure equals the same figure computed here in Python from the raw rows.

Each example runs in one transaction that is rolled back, on one database shared by all
examples: the rows and the calls see the same now(), so rows exactly on the window edge
are tested too, and nothing leaks into the next example.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any
from uuid import UUID, uuid4

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notify_sql.wrappers import Analytics

CHANNELS = ["email", "sms", "push", "in_app"]
STATUSES = ["pending", "sent", "cancelled", "failed", "delivered", "bounced", "opened", "clicked"]
SENT = {"sent", "delivered", "opened", "clicked"}
DELIVERED = {"delivered", "opened", "clicked"}
FAILED = {"failed", "bounced"}
RECIPIENTS = [UUID(int=n) for n in range(1, 5)]
EVENT_TYPES = ["a", "b", "c"]
TIMESTAMPS = ["sent_at", "delivered_at", "opened_at", "clicked_at", "failed_at"]
MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class Event:
    id: UUID
    event_type: str
    age: timedelta  # now() - created_at


@dataclass(frozen=True)
class Delivery:
    id: UUID
    channel: str
    status: str
    recipient: UUID
    event: int | None  # index into the example's events
    age: timedelta
    after: dict[str, timedelta]  # timestamp column -> time after created_at


@dataclass(frozen=True)
class Preference:
    channel: str
    phone: bool
    verified: bool
    enabled: bool
    opted_out: bool


ages = st.builds(
    timedelta,
    hours=st.integers(0, 24 * 20),
    microseconds=st.sampled_from([0, 1, 999_999]) | st.integers(0, 3_600_000_000),
)
windows = st.builds(timedelta, hours=st.integers(1, 24 * 12), seconds=st.integers(0, 3599))
offsets = st.builds(timedelta, microseconds=st.integers(0, 100_000_000))


def deliveries(age: st.SearchStrategy[timedelta]) -> st.SearchStrategy[Delivery]:
    return st.builds(
        Delivery,
        id=st.builds(uuid4),
        channel=st.sampled_from(CHANNELS),
        status=st.sampled_from(STATUSES),
        recipient=st.sampled_from(RECIPIENTS),
        event=st.none() | st.integers(0, 5),
        age=age,
        after=st.dictionaries(st.sampled_from(TIMESTAMPS), offsets),
    )


def events(age: st.SearchStrategy[timedelta]) -> st.SearchStrategy[Event]:
    return st.builds(Event, id=st.builds(uuid4), event_type=st.sampled_from(EVENT_TYPES), age=age)


def preference(
    channel: str, phone: bool, verified: bool, enabled: bool, opted_out: bool
) -> Preference:
    """Only sms rows hold a phone number, only a phone can be verified (0002's CHECKs)."""
    phone = phone and channel == "sms"
    return Preference(channel, phone, verified and phone, enabled, opted_out)


preferences = st.builds(
    preference,
    st.sampled_from(["sms", "sms", "email"]),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)


@dataclass(frozen=True)
class Scenario:
    window: timedelta
    events: list[Event]
    deliveries: list[Delivery]
    preferences: list[Preference]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    window = draw(windows)
    # Rows exactly on, and one microsecond either side of, each window edge.
    edges = [
        window - MICROSECOND,
        window,
        window + MICROSECOND,
        2 * window,
        2 * window + MICROSECOND,
    ]
    age = ages | st.sampled_from(edges)
    return Scenario(
        window=window,
        events=draw(st.lists(events(age), max_size=6)),
        deliveries=draw(st.lists(deliveries(age), max_size=30)),
        preferences=draw(st.lists(preferences, max_size=8)),
    )


def round2(value: Fraction | None) -> Decimal | None:
    """PostgreSQL's round(numeric, 2): half away from zero."""
    if value is None:
        return None
    cents = math.floor(abs(value) * 100 + Fraction(1, 2))
    return Decimal(cents if value >= 0 else -cents) / 100


def rate(numerator: int, denominator: int) -> Decimal | None:
    return round2(Fraction(100 * numerator, denominator)) if denominator else None


def mean(values: list[Fraction]) -> Fraction | None:
    return sum(values, Fraction(0)) / len(values) if values else None


def seconds(delta: timedelta) -> Fraction:
    return Fraction(delta // MICROSECOND, 1_000_000)


def is_sent(d: Delivery) -> bool:
    return d.status in SENT


def is_opened(d: Delivery) -> bool:
    return is_sent(d) and ("opened_at" in d.after or "clicked_at" in d.after)


def is_clicked(d: Delivery) -> bool:
    return is_sent(d) and "clicked_at" in d.after


def funnel(rows: list[Delivery]) -> dict[str, object]:
    """The contract's funnel, as the SQL returns it."""
    sent = sum(map(is_sent, rows))
    delivered = sum(d.status in DELIVERED for d in rows)
    opened = sum(map(is_opened, rows))
    clicked = sum(map(is_clicked, rows))
    failed = sum(d.status in FAILED for d in rows)
    to_sent = [seconds(d.after["sent_at"]) * 1000 for d in rows if "sent_at" in d.after]
    to_delivered = [seconds(d.after["delivered_at"]) for d in rows if "delivered_at" in d.after]
    return {
        "total_sent": sum(d.status != "cancelled" for d in rows),
        "sent": sent,
        "delivered": delivered,
        "opened": opened,
        "clicked": clicked,
        "failed": failed,
        "success_rate": rate(sent, sent + failed),
        "delivery_rate": rate(delivered, sent),
        "open_rate": rate(opened, sent),
        "click_rate": rate(clicked, opened),
        "avg_delivery_time_ms": round2(mean(to_sent)),
        "avg_time_to_delivered_seconds": round2(mean(to_delivered)),
    }


def fields(row: object, names: Iterable[str]) -> dict[str, object]:
    return {name: getattr(row, name) for name in names}


def insert(
    conn: psycopg.Connection[Any],
    now: datetime,
    event_rows: list[Event],
    delivery_rows: list[Delivery],
    preference_rows: list[Preference],
) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO notify.notification_events (id, event_type, created_at) "
            "VALUES (%s, %s, %s)",
            [(e.id, e.event_type, now - e.age) for e in event_rows],
        )
        cur.executemany(
            "INSERT INTO notify.notification_deliveries (id, channel, status, recipient_user_id,"
            " event_id, created_at, updated_at, sent_at, delivered_at, opened_at, clicked_at,"
            " failed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (d.id, d.channel, d.status, d.recipient, event_of(d, event_rows),
                 now - d.age, now - d.age,
                 *(now - d.age + d.after[c] if c in d.after else None for c in TIMESTAMPS))
                for d in delivery_rows
            ],
        )  # fmt: skip
        cur.executemany(
            "INSERT INTO notify.notification_preferences "
            "(user_id, channel, phone_number, phone_verified, enabled, opted_out) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            [(uuid4(), p.channel, "+1555" if p.phone else None, p.verified, p.enabled,
              p.opted_out) for p in preference_rows],
        )  # fmt: skip


def event_of(delivery: Delivery, event_rows: list[Event]) -> UUID | None:
    if delivery.event is None or delivery.event >= len(event_rows):
        return None
    return event_rows[delivery.event].id


def interval_text(window: timedelta) -> str:
    """The SQL interval text of a window, spelled out exactly."""
    return f"{window.days} days {window.seconds} seconds {window.microseconds} microseconds"


def in_window(age: timedelta, window: timedelta) -> bool:
    return age <= window  # created_at >= now() - window


def check_channel_performance(api: Analytics, window: timedelta, rows: list[Delivery]) -> None:
    inside = [d for d in rows if in_window(d.age, window)]
    for got in api.get_notification_channel_performance(interval=interval_text(window)):
        expected = funnel([d for d in inside if d.channel == got.channel])
        del expected["avg_time_to_delivered_seconds"]
        assert fields(got, expected) == expected, got.channel
    assert {
        r.channel for r in api.get_notification_channel_performance(interval=interval_text(window))
    } == set(CHANNELS)


def check_overview(api: Analytics, window: timedelta, rows: list[Delivery]) -> None:
    overview_current, overview_previous = api.get_notification_overview(
        interval=interval_text(window)
    )
    current = funnel([d for d in rows if in_window(d.age, window)])
    previous = funnel([d for d in rows if window < d.age <= 2 * window])
    assert fields(overview_current, current) == current
    assert fields(overview_previous, previous) == previous


def day_of(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def check_timeline(api: Analytics, now: datetime, window: timedelta, rows: list[Delivery]) -> None:
    inside = [d for d in rows if in_window(d.age, window)]
    first, last = day_of(now - window), day_of(now)
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    timeline = api.get_notification_delivery_timeline(
        interval=interval_text(window), granularity="day"
    )
    assert [b.bucket_start for b in timeline] == days
    for bucket in timeline:
        expected = funnel([d for d in inside if day_of(now - d.age) == bucket.bucket_start])
        assert fields(bucket, expected) == expected


def check_event_performance(
    api: Analytics, window: timedelta, event_rows: list[Event], rows: list[Delivery]
) -> None:
    expected = {}
    for event_type in EVENT_TYPES:
        typed = [i for i, e in enumerate(event_rows) if e.event_type == event_type]
        chosen = [i for i in typed if in_window(event_rows[i].age, window)]
        if not chosen:
            continue
        ds = [d for d in rows if d.event in chosen and in_window(d.age, window)]
        to_sent = [seconds(d.after["sent_at"]) for d in ds if "sent_at" in d.after]
        sent, opened = sum(map(is_sent, ds)), sum(map(is_opened, ds))
        expected[event_type] = (
            len(chosen), len(ds), len({d.recipient for d in ds}), round2(mean(to_sent)),
            rate(opened, sent), rate(sum(map(is_clicked, ds)), opened),
        )  # fmt: skip
    got = api.get_notification_event_performance(interval=interval_text(window))
    assert {r.event_type: (r.total_events, r.total_deliveries, r.unique_subscribers,
                           r.avg_delivery_time_seconds, r.open_rate, r.click_rate)
            for r in got} == expected  # fmt: skip
    counts = [(-(r.total_events or 0), r.event_type) for r in got]
    assert counts == sorted(counts)


SMS_STATS_COLUMNS = [
    "total_users_with_phone", "users_phone_verified", "users_sms_enabled", "users_opted_out",
    "phone_verification_rate", "sms_adoption_rate", "opt_out_rate", "total_sms_sent_24h",
    "sms_delivery_rate_24h", "avg_sms_delivery_time_seconds",
]  # fmt: skip


def check_sms_stats(
    api: Analytics, window: timedelta, rows: list[Delivery], preference_rows: list[Preference]
) -> None:
    phones = [p for p in preference_rows if p.channel == "sms" and p.phone]
    verified = sum(p.verified for p in phones)
    enabled = sum(p.verified and p.enabled and not p.opted_out for p in phones)
    opted_out = sum(p.opted_out for p in phones)
    sms = funnel([d for d in rows if d.channel == "sms" and in_window(d.age, window)])
    expected = [
        len(phones), verified, enabled, opted_out, rate(verified, len(phones)),
        rate(enabled, verified), rate(opted_out, len(phones)), sms["total_sent"],
        sms["delivery_rate"], sms["avg_time_to_delivered_seconds"],
    ]  # fmt: skip
    assert (
        list(
            fields(
                api.get_sms_notification_stats(interval=interval_text(window))[0], SMS_STATS_COLUMNS
            ).values()
        )
        == expected
    )


def check_recent_failures(
    api: Analytics, now: datetime, window: timedelta, rows: list[Delivery]
) -> None:
    def failed_at(d: Delivery) -> datetime:
        return now - d.age + d.after["failed_at"] if "failed_at" in d.after else now - d.age

    failed = [d for d in rows if d.status in FAILED and in_window(d.age, window)]
    failed.sort(key=lambda d: (now - failed_at(d), d.id))  # latest failure first
    got = api.get_recent_failed_deliveries(limit=5, interval=interval_text(window))
    assert [r.delivery_id for r in got] == [d.id for d in failed[:5]]


def check_rates_bounded(api: Analytics, window: timedelta) -> None:
    rows: list[Any] = [
        *api.get_notification_channel_performance(interval=interval_text(window)),
        *api.get_notification_delivery_timeline(interval=interval_text(window), granularity="hour"),
    ]
    rows += [
        *api.get_notification_event_performance(interval=interval_text(window)),
        api.get_sms_notification_stats(interval=interval_text(window))[0],
    ]
    for row in rows:
        for name, value in vars(row).items():
            if name.endswith("_rate") or name.endswith("_rate_24h"):
                assert value is None or Decimal(0) <= value <= 100, (name, row)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
def test_every_metric_matches_python(
    service_db: psycopg.Connection[Any], scenario: Scenario
) -> None:
    service_db.execute("SET TimeZone = 'UTC'")  # day buckets as computed here
    api = Analytics(service_db)
    window, rows = scenario.window, scenario.deliveries
    with service_db.transaction(force_rollback=True):
        row = service_db.execute("SELECT now()").fetchone()
        assert row is not None
        now: datetime = row[0]
        insert(service_db, now, scenario.events, rows, scenario.preferences)
        check_channel_performance(api, window, rows)
        check_overview(api, window, rows)
        check_timeline(api, now, window, rows)
        check_event_performance(api, window, scenario.events, rows)
        check_sms_stats(api, window, rows, scenario.preferences)
        check_recent_failures(api, now, window, rows)
        check_rates_bounded(api, window)
