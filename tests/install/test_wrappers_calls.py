"""Every generated wrapper method, sync and async, reaches its SQL function.

Each method is called twice: with only its required arguments, all NULL (so the SQL
defaults apply), and with every argument NULL. A wrapper that names a wrong function,
parameter or type fails with another SQLSTATE (42883 and the like); a result it cannot
turn into its declared type fails the type check. The only acceptable outcomes are a
well-typed result or 22023 naming one of the function's parameters.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

import psycopg
import pytest

import notify_sql.wrappers
from notify_sql.errors import InvalidArgument
from notify_sql.rpc import AsyncRpc, Function, SyncRpc
from notify_sql.wrappers import Deliveries, Email, Queue, Sms
from tests.helpers.deliveries import apply_delivery_status, make_delivery, subscriber

CLASSES = [getattr(notify_sql.wrappers, name) for name in notify_sql.wrappers.__all__]
METHODS = [
    (cls, name)
    for cls in CLASSES
    for name, member in vars(cls).items()
    if inspect.isfunction(member) and not name.startswith("_")
]


def test_every_group_has_a_sync_and_an_async_class_with_the_same_methods() -> None:
    sync = {c.__name__: c for c in CLASSES if issubclass(c, SyncRpc)}
    asynchronous = {c.__name__: c for c in CLASSES if issubclass(c, AsyncRpc)}
    assert {"Queue", "Deliveries", "Analytics"} <= set(sync)
    assert set(asynchronous) == {f"Async{name}" for name in sync}
    for name, cls in sync.items():
        assert set(vars(cls)) - {"__doc__"} == set(vars(asynchronous[f"Async{name}"])) - {"__doc__"}


def _spec(cls: type, name: str) -> Function:
    module = inspect.getmodule(cls)
    spec = getattr(module, "_" + name.upper())
    assert isinstance(spec, Function) and spec.name == name
    return spec


def _calls(cls: type, name: str) -> list[dict[str, Any]]:
    parameters = list(inspect.signature(getattr(cls, name)).parameters.values())[1:]
    required = {p.name: None for p in parameters if p.default is inspect.Parameter.empty}
    return [required, {p.name: None for p in parameters}]


def _check_type(cls: type, name: str, result: object) -> None:
    annotation = str(inspect.signature(getattr(cls, name)).return_annotation)
    module = inspect.getmodule(cls)
    if annotation.startswith("list["):
        assert isinstance(result, list)
        row = getattr(module, annotation[5:-1], None)
        if row is not None:
            assert all(isinstance(item, row) for item in result)
            assert all(dataclasses.is_dataclass(item) for item in result)
    elif annotation == "None":
        assert result is None


def _check_error(cls: type, name: str, error: InvalidArgument) -> None:
    sql_names = {p.sql_name for p in _spec(cls, name).parameters.values()}
    assert error.parameter in sql_names, f"{name}: {error}"


@pytest.mark.parametrize(
    ("cls", "name"),
    [m for m in METHODS if issubclass(m[0], SyncRpc)],
    ids=[f"{c.__name__}.{n}" for c, n in METHODS if issubclass(c, SyncRpc)],
)
def test_sync_wrapper_reaches_its_function(
    service_db: psycopg.Connection[Any], cls: type, name: str
) -> None:
    method = getattr(cls(service_db), name)
    for args in _calls(cls, name):
        try:
            result = method(**args)
        except InvalidArgument as error:
            _check_error(cls, name, error)
            continue
        _check_type(cls, name, result)


@pytest.mark.parametrize(
    ("cls", "name"),
    [m for m in METHODS if issubclass(m[0], AsyncRpc)],
    ids=[f"{c.__name__}.{n}" for c, n in METHODS if issubclass(c, AsyncRpc)],
)
async def test_async_wrapper_reaches_its_function(dsn: str, cls: type, name: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SET ROLE service_role")
        method = getattr(cls(conn), name)
        for args in _calls(cls, name):
            try:
                result = await method(**args)
            except InvalidArgument as error:
                _check_error(cls, name, error)
                continue
            _check_type(cls, name, result)


# Valid arguments for every wrapper, so that each result type (scalar, array, rows) is
# parsed at least once, sync and async. A setup may write what the call needs; calls
# that return rows are set up to return at least one, so the row class is exercised.
Conn = psycopg.Connection[Any]
USER = uuid4()
METRIC_DAY = date(2026, 1, 15)


def _job(conn: Conn) -> None:
    Queue(conn).add_queue_job(USER, "t", {"briefDate": "2026-01-01"})


def _sms_link(conn: Conn) -> dict[str, Any]:
    delivery_id, _ = make_delivery(conn, "sms")
    return {"delivery_id": delivery_id, "url": "https://example.com/a"}


def _traced(conn: Conn) -> dict[str, Any]:
    Deliveries(conn).emit_notification_event("x", {}, target_user_id=USER, correlation_id="c1")
    return {"correlation_id": "c1"}


def _failed(conn: Conn) -> dict[str, Any]:
    delivery_id, _ = make_delivery(conn, "email")
    apply_delivery_status(conn, delivery_id, "failed", error="boom")
    return {}


def _event(conn: Conn) -> dict[str, Any]:
    Deliveries(conn).emit_notification_event("x", {}, target_user_id=USER)
    return {}


def _delivery(conn: Conn) -> None:
    make_delivery(conn, "email")


def _tracking_link(conn: Conn) -> dict[str, Any]:
    delivery_id, _ = make_delivery(conn, "email")
    return {"delivery_id": delivery_id, "destination_url": "https://example.com/t"}


def _subscriber(conn: Conn) -> None:
    subscriber(conn, "x")


def _limit(conn: Conn) -> None:
    Queue(conn).set_queue_limit("sms:twilio", max_per_second=2.5, max_concurrent=3)


def _paused(conn: Conn) -> None:
    Queue(conn).pause_queue_limit("sms:twilio", 60)


def _suppression(conn: Conn) -> None:
    Email(conn).upsert_email_suppression("a@example.com", "marketing", "unsubscribe", "admin")


def _sms_metrics(conn: Conn) -> None:
    # Whole-day metrics (hour NULL) of today and of METRIC_DAY, as the refresh reads them.
    for day in (datetime.now(UTC).date(), METRIC_DAY):
        Sms(conn).record_sms_metric(day, None, USER, "sent_count", 2)
        Sms(conn).record_sms_metric(day, None, USER, "delivered_count", 1)


def _sms_summary(conn: Conn) -> None:
    _sms_metrics(conn)
    Sms(conn).refresh_sms_metrics_daily()


def _with(setup: Callable[[Conn], object], **kwargs: Any) -> Callable[[Conn], dict[str, Any]]:
    def prepare(conn: Conn) -> dict[str, Any]:
        setup(conn)
        return kwargs

    return prepare


def _plain(**kwargs: Any) -> Callable[[Conn], dict[str, Any]]:
    return lambda _conn: kwargs


VALID: dict[str, Callable[[Conn], dict[str, Any]]] = {
    "add_queue_job": _plain(user_id=None, job_type="t", metadata={}),
    "add_queue_jobs": _plain(jobs=[{"job_type": "t"}]),
    "cancel_brief_jobs_for_date": _plain(user_id=USER, brief_date="2026-01-01"),
    "cancel_job_with_reason": _plain(job_id=uuid4(), reason="r"),
    "cancel_jobs_atomic": _with(_job, user_id=USER, job_type="t"),
    "claim_pending_jobs": _with(_job, job_types=["t"]),
    "complete_queue_job": _plain(job_id=uuid4(), processing_token=uuid4()),
    "complete_queue_jobs": _plain(job_ids=[uuid4()], processing_tokens=[uuid4()]),
    "fail_queue_job": _plain(job_id=uuid4(), error_message="x", processing_token=uuid4()),
    "fail_queue_jobs": _plain(job_ids=[uuid4()], processing_tokens=[uuid4()], error_messages=["x"]),
    "heartbeat_queue_job": _plain(job_id=uuid4(), processing_token=uuid4()),
    "prune_queue_jobs": _plain(),
    "queue_stats": _with(_job),
    "release_queue_jobs": _plain(job_ids=[uuid4()], processing_tokens=[uuid4()]),
    "reset_stalled_jobs": _plain(),
    "retry_queue_job": _plain(job_id=uuid4()),
    "set_queue_limit": _plain(limit_key="k", max_per_second=0.5, max_concurrent=2, burst=3),
    "pause_queue_limit": _plain(limit_key="k", seconds=1.5),
    "queue_limit_status": _with(_limit),
    "next_limited_start": _with(_paused),
    "run_queue_upkeep": _with(
        _job, stall_timeout=timedelta(minutes=5), retention=timedelta(days=7), batch_size=100
    ),
    "delete_old_completed_queue_jobs": _with(
        _job, retention_days=30, batch_size=100, job_types=["t"]
    ),
    "get_queue_health": _with(_job, stall_timeout=timedelta(minutes=5), window=timedelta(hours=1)),
    "get_queue_throughput": _plain(interval=timedelta(minutes=10)),
    "list_queue_jobs": _with(_job, status="pending", job_type="t", user_id=USER, limit=10),
    "list_notification_deliveries": _with(_delivery, channel="email", status="pending", limit=10),
    "create_sms_link": _sms_link,
    "emit_notification_event": _plain(event_type="x", payload={}, target_user_id=USER),
    "get_notification_trace": _traced,
    "opt_out_user_channel": _plain(user_id=USER, channel="sms", reason=None),
    "record_email_event": _plain(tracking_id="unknown", event="open"),
    "record_sms_link_click": _plain(short_code="unknown1"),
    "create_tracking_link": _tracking_link,
    "update_sms_status_atomic": _plain(message_id=uuid4(), twilio_sid=None, twilio_status="sent"),
    "compact_delivery_funnel_rollup": _plain(),
    "rebuild_delivery_funnel_rollup": _plain(),
    "rebuild_delivery_status_rollup": _plain(),
    "get_channel_funnel_in_slices": _plain(),
    "get_delivery_status_counts": _failed,
    "get_notification_channel_performance": _plain(),
    "get_notification_delivery_timeline": _plain(),
    "get_notification_event_performance": _event,
    "get_notification_overview": _plain(),
    "get_recent_failed_deliveries": _failed,
    "get_sms_notification_stats": _plain(),
    "get_notification_overview_metrics": _with(_delivery, interval="7 days", offset="0 hours"),
    "get_notification_failed_deliveries": _with(_failed, interval="1 hour", limit=10),
    "get_notification_active_subscriptions": _with(_subscriber),
    "is_email_suppressed": _with(_suppression, email=" A@Example.com", scope="marketing"),
    "upsert_email_suppression": _plain(
        email="b@example.com",
        scope="all",
        reason="hard_bounce",
        source="provider_webhook",
        metadata={"provider": "x"},
    ),
    "queue_sms_message": _plain(
        user_id=USER,
        phone_number="+15550100",
        message="hello",
        priority="high",
        scheduled_for=datetime(2026, 1, 1, tzinfo=UTC),
        metadata={"dedup_key": "k1"},
    ),
    "check_and_increment_sms_daily_limit": _plain(
        user_id=USER, increment=2, default_limit=10, now=datetime(2026, 1, 1, 12, tzinfo=UTC)
    ),
    "record_sms_metric": _plain(
        metric_date=METRIC_DAY,
        metric_hour=13,
        user_id=USER,
        metric_type="sent_count",
        metric_value=1,
        metadata={"provider": "x"},
    ),
    "refresh_sms_metrics_daily": _with(_sms_metrics),
    "get_sms_daily_metrics": _with(_sms_summary, start_date=METRIC_DAY, end_date=METRIC_DAY),
    "get_user_sms_metrics": _with(_sms_metrics, user_id=USER, days=30),
}


def test_every_wrapper_has_valid_arguments() -> None:
    """A new function needs an entry in VALID (its wrapper is generated, its test not)."""
    assert sorted(VALID) == sorted({name for _, name in METHODS})


def _check_valid(cls: type, name: str, result: object) -> None:
    _check_type(cls, name, result)
    annotation = str(inspect.signature(getattr(cls, name)).return_annotation)
    if annotation.endswith("Row]"):
        assert result, f"{name}: set up rows, so the row class is exercised"


@pytest.mark.parametrize(
    ("cls", "name"),
    [m for m in METHODS if issubclass(m[0], SyncRpc) and m[1] in VALID],
    ids=[f"{c.__name__}.{n}" for c, n in METHODS if issubclass(c, SyncRpc) and n in VALID],
)
def test_sync_wrapper_with_valid_arguments(service_db: Conn, cls: type, name: str) -> None:
    kwargs = VALID[name](service_db)
    _check_valid(cls, name, getattr(cls(service_db), name)(**kwargs))


@pytest.mark.parametrize(
    ("cls", "name"),
    [m for m in METHODS if issubclass(m[0], AsyncRpc) and m[1] in VALID],
    ids=[f"{c.__name__}.{n}" for c, n in METHODS if issubclass(c, AsyncRpc) and n in VALID],
)
async def test_async_wrapper_with_valid_arguments(
    dsn: str, service_db: Conn, cls: type, name: str
) -> None:
    kwargs = VALID[name](service_db)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SET ROLE service_role")
        _check_valid(cls, name, await getattr(cls(conn), name)(**kwargs))
