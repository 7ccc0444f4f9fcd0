"""Typed wrappers for the delivery-tracking RPCs (provider callbacks, links, events).

The rules (ranking, monotonic statuses, timestamps, logging) live in the SQL
functions; these classes only name them and type their arguments and rows.
``Deliveries`` wraps a sync connection, ``AsyncDeliveries`` an async one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import psycopg

from notify_sql.rpc import DEFAULT_SCHEMA, acall_rows, acall_value, call_rows, call_value

TwilioStatus = Literal[
    "accepted",
    "scheduled",
    "queued",
    "sending",
    "sent",
    "canceled",
    "failed",
    "undelivered",
    "delivered",
    "read",
]
DeliveryStatus = Literal[
    "pending", "sent", "cancelled", "failed", "delivered", "bounced", "opened", "clicked"
]
EmailEvent = Literal["delivered", "open", "click", "bounce", "complaint"]
Channel = Literal["email", "sms", "push", "in_app"]


@dataclass(frozen=True)
class SmsStatusUpdate:
    """The row ``update_sms_status_atomic`` returns. For an unknown message every
    field but the two flags is None."""

    notification_delivery_id: UUID | None
    user_id: UUID | None
    sent_at: datetime | None
    delivered_at: datetime | None
    attempt_count: int | None
    max_attempts: int | None
    priority: str | None
    updated_sms: bool
    updated_delivery: bool


@dataclass(frozen=True)
class DeliveryStatusChange:
    """The row ``apply_delivery_status`` returns for an existing delivery."""

    changed: bool
    correlation_id: str


@dataclass(frozen=True)
class TraceEntry:
    """One row of ``get_notification_trace``: what happened under a correlation id."""

    at: datetime
    kind: str  # event | delivery | job | callback | log
    id: str
    detail: dict[str, Any]


# Argument builders shared by the sync and async classes. An optional timestamp left
# as None is not sent, so the SQL default (now()) applies.


def _sms_status_args(
    *,
    message_id: UUID | None,
    twilio_sid: str | None,
    twilio_status: str,
    mapped_status: str | None,
    error_code: int | None,
    error_message: str | None,
) -> dict[str, object]:
    return {
        "p_message_id": message_id,
        "p_twilio_sid": twilio_sid,
        "p_twilio_status": twilio_status,
        "p_mapped_status": mapped_status,
        "p_error_code": error_code,
        "p_error_message": error_message,
    }


def _email_event_args(
    tracking_id: str, event: str, occurred_at: datetime | None, url: str | None
) -> dict[str, object]:
    args: dict[str, object] = {"p_tracking_id": tracking_id, "p_event": event, "p_url": url}
    if occurred_at is not None:
        args["p_occurred_at"] = occurred_at
    return args


def _apply_args(
    *,
    delivery_id: UUID,
    status: str,
    occurred_at: datetime | None,
    error: str | None,
) -> dict[str, object]:
    args: dict[str, object] = {"p_delivery_id": delivery_id, "p_status": status, "p_error": error}
    if occurred_at is not None:
        args["p_occurred_at"] = occurred_at
    return args


def _opt_out_args(
    user_id: UUID, channel: str, reason: str | None, phone_number: str | None
) -> dict[str, object]:
    return {
        "p_user_id": user_id,
        "p_channel": channel,
        "p_reason": reason,
        "p_phone_number": phone_number,
    }


def _link_args(delivery_id: UUID, url: str) -> dict[str, object]:
    return {"p_delivery_id": delivery_id, "p_url": url}


def _click_args(short_code: str, occurred_at: datetime | None) -> dict[str, object]:
    args: dict[str, object] = {"p_short_code": short_code}
    if occurred_at is not None:
        args["p_occurred_at"] = occurred_at
    return args


def _emit_args(
    *,
    event_type: str,
    payload: Mapping[str, Any],
    target_user_id: UUID | None,
    actor_user_id: UUID | None,
    channels: Sequence[str] | None,
    event_source: str,
    correlation_id: str | None,
) -> dict[str, object]:
    return {
        "p_event_type": event_type,
        "p_payload": payload,
        "p_target_user_id": target_user_id,
        "p_actor_user_id": actor_user_id,
        "p_channels": None if channels is None else list(channels),
        "p_event_source": event_source,
        "p_correlation_id": correlation_id,
    }


class Deliveries:
    """Delivery-tracking RPCs over a sync connection (autocommit, or commit yourself)."""

    def __init__(self, conn: psycopg.Connection[Any], schema: str = DEFAULT_SCHEMA) -> None:
        self.conn = conn
        self.schema = schema

    def update_sms_status_atomic(
        self,
        *,
        message_id: UUID | None,
        twilio_sid: str | None,
        twilio_status: TwilioStatus | str,
        mapped_status: DeliveryStatus | None = None,
        error_code: int | None = None,
        error_message: str | None = None,
    ) -> SmsStatusUpdate:
        """Applies a Twilio status callback to the SMS and its delivery, atomically."""
        args = _sms_status_args(
            message_id=message_id,
            twilio_sid=twilio_sid,
            twilio_status=twilio_status,
            mapped_status=mapped_status,
            error_code=error_code,
            error_message=error_message,
        )
        rows = call_rows(self.conn, "update_sms_status_atomic", args, SmsStatusUpdate, self.schema)
        return rows[0]

    def apply_delivery_status(
        self,
        delivery_id: UUID,
        status: DeliveryStatus | str,
        occurred_at: datetime | None = None,
        error: str | None = None,
    ) -> DeliveryStatusChange | None:
        """Reports a status for a delivery (e.g. the worker's ``sent`` / ``failed``);
        it only ever moves up the ranking. None when the delivery does not exist."""
        args = _apply_args(
            delivery_id=delivery_id, status=status, occurred_at=occurred_at, error=error
        )
        rows = call_rows(
            self.conn, "apply_delivery_status", args, DeliveryStatusChange, self.schema
        )
        return rows[0] if rows else None

    def record_email_event(
        self,
        tracking_id: str,
        event: EmailEvent | str,
        occurred_at: datetime | None = None,
        url: str | None = None,
    ) -> bool:
        """Applies an email provider event; False when the tracking id is unknown."""
        args = _email_event_args(tracking_id, event, occurred_at, url)
        return bool(call_value(self.conn, "record_email_event", args, self.schema))

    def create_sms_link(self, delivery_id: UUID, url: str) -> str:
        """The short code for ``url`` on this delivery (created once)."""
        args = _link_args(delivery_id, url)
        return str(call_value(self.conn, "create_sms_link", args, self.schema))

    def record_sms_link_click(
        self, short_code: str, occurred_at: datetime | None = None
    ) -> str | None:
        """Counts a click; returns the URL to redirect to, None for an unknown code."""
        url: str | None = call_value(
            self.conn, "record_sms_link_click", _click_args(short_code, occurred_at), self.schema
        )
        return url

    def emit_notification_event(
        self,
        event_type: str,
        payload: Mapping[str, Any],
        *,
        target_user_id: UUID | None = None,
        actor_user_id: UUID | None = None,
        channels: Sequence[Channel] | None = None,
        event_source: str = "api",
        correlation_id: str | None = None,
    ) -> UUID:
        """Writes the event, its deliveries and their send jobs; returns the event id."""
        args = _emit_args(
            event_type=event_type,
            payload=payload,
            target_user_id=target_user_id,
            actor_user_id=actor_user_id,
            channels=channels,
            event_source=event_source,
            correlation_id=correlation_id,
        )
        event_id: UUID = call_value(self.conn, "emit_notification_event", args, self.schema)
        return event_id

    def opt_out_user_channel(
        self,
        user_id: UUID,
        channel: Channel,
        reason: str | None = None,
        phone_number: str | None = None,
    ) -> bool:
        """Opts a user out of a channel (idempotent); True when this call did it."""
        args = _opt_out_args(user_id, channel, reason, phone_number)
        return bool(call_value(self.conn, "opt_out_user_channel", args, self.schema))

    def get_notification_trace(self, correlation_id: str) -> list[TraceEntry]:
        """Event, deliveries, jobs, callbacks and logs of one correlation id, in time order."""
        args = {"p_correlation_id": correlation_id}
        return call_rows(self.conn, "get_notification_trace", args, TraceEntry, self.schema)


class AsyncDeliveries:
    """Async twin of :class:`Deliveries`."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], schema: str = DEFAULT_SCHEMA) -> None:
        self.conn = conn
        self.schema = schema

    async def update_sms_status_atomic(
        self,
        *,
        message_id: UUID | None,
        twilio_sid: str | None,
        twilio_status: TwilioStatus | str,
        mapped_status: DeliveryStatus | None = None,
        error_code: int | None = None,
        error_message: str | None = None,
    ) -> SmsStatusUpdate:
        args = _sms_status_args(
            message_id=message_id,
            twilio_sid=twilio_sid,
            twilio_status=twilio_status,
            mapped_status=mapped_status,
            error_code=error_code,
            error_message=error_message,
        )
        rows = await acall_rows(
            self.conn, "update_sms_status_atomic", args, SmsStatusUpdate, self.schema
        )
        return rows[0]

    async def apply_delivery_status(
        self,
        delivery_id: UUID,
        status: DeliveryStatus | str,
        occurred_at: datetime | None = None,
        error: str | None = None,
    ) -> DeliveryStatusChange | None:
        args = _apply_args(
            delivery_id=delivery_id, status=status, occurred_at=occurred_at, error=error
        )
        rows = await acall_rows(
            self.conn, "apply_delivery_status", args, DeliveryStatusChange, self.schema
        )
        return rows[0] if rows else None

    async def record_email_event(
        self,
        tracking_id: str,
        event: EmailEvent | str,
        occurred_at: datetime | None = None,
        url: str | None = None,
    ) -> bool:
        args = _email_event_args(tracking_id, event, occurred_at, url)
        return bool(await acall_value(self.conn, "record_email_event", args, self.schema))

    async def create_sms_link(self, delivery_id: UUID, url: str) -> str:
        args = _link_args(delivery_id, url)
        return str(await acall_value(self.conn, "create_sms_link", args, self.schema))

    async def record_sms_link_click(
        self, short_code: str, occurred_at: datetime | None = None
    ) -> str | None:
        url: str | None = await acall_value(
            self.conn, "record_sms_link_click", _click_args(short_code, occurred_at), self.schema
        )
        return url

    async def emit_notification_event(
        self,
        event_type: str,
        payload: Mapping[str, Any],
        *,
        target_user_id: UUID | None = None,
        actor_user_id: UUID | None = None,
        channels: Sequence[Channel] | None = None,
        event_source: str = "api",
        correlation_id: str | None = None,
    ) -> UUID:
        args = _emit_args(
            event_type=event_type,
            payload=payload,
            target_user_id=target_user_id,
            actor_user_id=actor_user_id,
            channels=channels,
            event_source=event_source,
            correlation_id=correlation_id,
        )
        event_id: UUID = await acall_value(self.conn, "emit_notification_event", args, self.schema)
        return event_id

    async def opt_out_user_channel(
        self,
        user_id: UUID,
        channel: Channel,
        reason: str | None = None,
        phone_number: str | None = None,
    ) -> bool:
        args = _opt_out_args(user_id, channel, reason, phone_number)
        return bool(await acall_value(self.conn, "opt_out_user_channel", args, self.schema))

    async def get_notification_trace(self, correlation_id: str) -> list[TraceEntry]:
        args = {"p_correlation_id": correlation_id}
        return await acall_rows(self.conn, "get_notification_trace", args, TraceEntry, self.schema)
