"""Typed wrappers for the analytics RPCs (read-only dashboard queries).

Every figure is computed in SQL (see ``sql/functions/internal/analytics_delivery_funnel.sql`` for
the funnel definitions); these classes only name the function, pass the contract's
argument names and type the rows. Windows are PostgreSQL interval text (``'7 days'``,
``'24 hours'``) or a :class:`~datetime.timedelta`; a bad window raises
:class:`~notify_sql.errors.InvalidArgument` with ``.parameter == 'p_interval'``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar
from uuid import UUID

import psycopg

from notify_sql.rpc import DEFAULT_SCHEMA, acall_rows, acall_value, call_rows, call_value

Interval = str | timedelta
Granularity = Literal["hour", "day"]
Row = TypeVar("Row")


@dataclass(frozen=True)
class ChannelPerformance:
    channel: str
    total_sent: int
    sent: int
    delivered: int
    opened: int
    clicked: int
    failed: int
    success_rate: Decimal | None
    delivery_rate: Decimal | None
    open_rate: Decimal | None
    click_rate: Decimal | None
    avg_delivery_time_ms: Decimal | None


@dataclass(frozen=True)
class EventPerformance:
    event_type: str
    total_events: int
    total_deliveries: int
    unique_subscribers: int
    avg_delivery_time_seconds: Decimal | None
    open_rate: Decimal | None
    click_rate: Decimal | None


@dataclass(frozen=True)
class SmsNotificationStats:
    total_users_with_phone: int
    users_phone_verified: int
    users_sms_enabled: int
    users_opted_out: int
    phone_verification_rate: Decimal | None
    sms_adoption_rate: Decimal | None
    opt_out_rate: Decimal | None
    total_sms_sent_24h: int
    sms_delivery_rate_24h: Decimal | None
    avg_sms_delivery_time_seconds: Decimal | None


@dataclass(frozen=True)
class PeriodOverview:
    period: Literal["current", "previous"]
    period_start: datetime
    period_end: datetime
    total_sent: int
    sent: int
    delivered: int
    opened: int
    clicked: int
    failed: int
    success_rate: Decimal | None
    delivery_rate: Decimal | None
    open_rate: Decimal | None
    click_rate: Decimal | None
    avg_delivery_time_ms: Decimal | None
    avg_time_to_delivered_seconds: Decimal | None


@dataclass(frozen=True)
class TimelineBucket:
    bucket_start: datetime
    total_sent: int
    sent: int
    delivered: int
    opened: int
    clicked: int
    failed: int
    success_rate: Decimal | None
    delivery_rate: Decimal | None
    open_rate: Decimal | None
    click_rate: Decimal | None
    avg_delivery_time_ms: Decimal | None
    avg_time_to_delivered_seconds: Decimal | None
    time_bucket: datetime  # = bucket_start, the seed platform's name


@dataclass(frozen=True)
class FailedDelivery:
    delivery_id: UUID
    event_id: UUID | None
    event_type: str | None
    recipient_user_id: UUID
    channel: str
    status: str
    attempts: int
    last_error: str | None
    external_id: str | None
    created_at: datetime
    failed_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class Overview:
    """The two rows of ``get_notification_overview``, for "vs last period" tiles."""

    current: PeriodOverview
    previous: PeriodOverview


def interval_text(window: Interval) -> str:
    """The SQL interval text for a window (a timedelta is spelled out exactly)."""
    if isinstance(window, timedelta):
        return f"{window.days} days {window.seconds} seconds {window.microseconds} microseconds"
    return window


@dataclass(frozen=True)
class _Call(Generic[Row]):
    function: str
    args: Mapping[str, object]
    row_type: type[Row]


def _channel_performance(interval: Interval) -> _Call[ChannelPerformance]:
    return _Call(
        "get_notification_channel_performance",
        {"p_interval": interval_text(interval)},
        ChannelPerformance,
    )


def _event_performance(interval: Interval) -> _Call[EventPerformance]:
    return _Call(
        "get_notification_event_performance",
        {"p_interval": interval_text(interval)},
        EventPerformance,
    )


def _sms_stats(interval: Interval) -> _Call[SmsNotificationStats]:
    return _Call(
        "get_sms_notification_stats", {"p_interval": interval_text(interval)}, SmsNotificationStats
    )


def _overview(interval: Interval) -> _Call[PeriodOverview]:
    return _Call(
        "get_notification_overview", {"p_interval": interval_text(interval)}, PeriodOverview
    )


def _timeline(
    interval: Interval, granularity: Granularity, channel: str | None
) -> _Call[TimelineBucket]:
    return _Call(
        "get_notification_delivery_timeline",
        {
            "p_interval": interval_text(interval),
            "p_granularity": granularity,
            "p_channel": channel,
        },
        TimelineBucket,
    )


def _recent_failures(limit: int, interval: Interval) -> _Call[FailedDelivery]:
    return _Call(
        "get_recent_failed_deliveries",
        {"p_limit": limit, "p_interval": interval_text(interval)},
        FailedDelivery,
    )


def _overview_of(rows: list[PeriodOverview]) -> Overview:
    current, previous = rows
    return Overview(current=current, previous=previous)


class Analytics:
    """Analytics RPCs on a psycopg connection (acting as ``service_role``)."""

    def __init__(self, conn: psycopg.Connection[Any], schema: str = DEFAULT_SCHEMA) -> None:
        self.conn = conn
        self.schema = schema

    def _rows(self, call: _Call[Row]) -> list[Row]:
        return call_rows(self.conn, call.function, call.args, call.row_type, self.schema)

    def channel_performance(self, interval: Interval = "7 days") -> list[ChannelPerformance]:
        """``get_notification_channel_performance``: one row per channel."""
        return self._rows(_channel_performance(interval))

    def event_performance(self, interval: Interval = "30 days") -> list[EventPerformance]:
        """``get_notification_event_performance``: one row per event type."""
        return self._rows(_event_performance(interval))

    def sms_stats(self, interval: Interval = "24 hours") -> SmsNotificationStats:
        """``get_sms_notification_stats`` (always exactly one row)."""
        (row,) = self._rows(_sms_stats(interval))
        return row

    def overview(self, interval: Interval = "7 days") -> Overview:
        """``get_notification_overview``: this window and the one before it."""
        return _overview_of(self._rows(_overview(interval)))

    def timeline(
        self,
        interval: Interval = "7 days",
        granularity: Granularity = "day",
        channel: str | None = None,
    ) -> list[TimelineBucket]:
        """``get_notification_delivery_timeline``: gapless buckets, oldest first."""
        return self._rows(_timeline(interval, granularity, channel))

    def recent_failures(
        self, limit: int = 50, interval: Interval = "7 days"
    ) -> list[FailedDelivery]:
        """``get_recent_failed_deliveries``: latest failures first."""
        return self._rows(_recent_failures(limit, interval))

    def compact_funnel_sums(self) -> int:
        """``compact_delivery_funnel_rollup``: folds per-session sums; rows folded."""
        return int(call_value(self.conn, "compact_delivery_funnel_rollup", {}, self.schema))

    def rebuild_funnel_sums(self) -> int:
        """``rebuild_delivery_funnel_rollup``: recounts every sum; rows written."""
        return int(call_value(self.conn, "rebuild_delivery_funnel_rollup", {}, self.schema))


class AsyncAnalytics:
    """Async twin of :class:`Analytics`."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], schema: str = DEFAULT_SCHEMA) -> None:
        self.conn = conn
        self.schema = schema

    async def _rows(self, call: _Call[Row]) -> list[Row]:
        return await acall_rows(self.conn, call.function, call.args, call.row_type, self.schema)

    async def channel_performance(self, interval: Interval = "7 days") -> list[ChannelPerformance]:
        """``get_notification_channel_performance``: one row per channel."""
        return await self._rows(_channel_performance(interval))

    async def event_performance(self, interval: Interval = "30 days") -> list[EventPerformance]:
        """``get_notification_event_performance``: one row per event type."""
        return await self._rows(_event_performance(interval))

    async def sms_stats(self, interval: Interval = "24 hours") -> SmsNotificationStats:
        """``get_sms_notification_stats`` (always exactly one row)."""
        (row,) = await self._rows(_sms_stats(interval))
        return row

    async def overview(self, interval: Interval = "7 days") -> Overview:
        """``get_notification_overview``: this window and the one before it."""
        return _overview_of(await self._rows(_overview(interval)))

    async def timeline(
        self,
        interval: Interval = "7 days",
        granularity: Granularity = "day",
        channel: str | None = None,
    ) -> list[TimelineBucket]:
        """``get_notification_delivery_timeline``: gapless buckets, oldest first."""
        return await self._rows(_timeline(interval, granularity, channel))

    async def recent_failures(
        self, limit: int = 50, interval: Interval = "7 days"
    ) -> list[FailedDelivery]:
        """``get_recent_failed_deliveries``: latest failures first."""
        return await self._rows(_recent_failures(limit, interval))

    async def compact_funnel_sums(self) -> int:
        """``compact_delivery_funnel_rollup``: folds per-session sums; rows folded."""
        folded = await acall_value(self.conn, "compact_delivery_funnel_rollup", {}, self.schema)
        return int(folded)

    async def rebuild_funnel_sums(self) -> int:
        """``rebuild_delivery_funnel_rollup``: recounts every sum; rows written."""
        written = await acall_value(self.conn, "rebuild_delivery_funnel_rollup", {}, self.schema)
        return int(written)
