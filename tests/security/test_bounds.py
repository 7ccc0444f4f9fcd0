"""The bounds documented in docs/bounds.md hold: at the bound a value is accepted, one
character (or byte) more is refused with 22023 naming the parameter.

Table-driven: every ``N characters`` / ``N bytes`` row of a function listed in CALLS
is a test case, so a bound changed in the SQL without the table (or the other way
round) fails here. Rows of functions not in CALLS are skipped (they belong to tests
that know how to call those functions).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from psycopg.types.json import Jsonb

from notify_sql.errors import InvalidArgument
from notify_sql.rpc import call_value
from tests.helpers.deliveries import make_delivery

Conn = psycopg.Connection[Any]
BOUNDS = Path(__file__).parents[2] / "docs" / "bounds.md"
_ROW = re.compile(r"^\| ([a-z_]+)(?: \(internal\))? \| (p_[a-z_]+) \| (\d+) (characters|bytes)\b")


def documented_bounds() -> list[tuple[str, str, int, str]]:
    rows = []
    for line in BOUNDS.read_text().splitlines():
        match = _ROW.match(line)
        if match:
            function, parameter, bound, unit = match.groups()
            rows.append((function, parameter, int(bound), unit))
    return rows


def _delivery(conn: Conn) -> dict[str, Any]:
    return {"p_delivery_id": make_delivery(conn, "sms")[0]}


# function -> the other arguments of a call that succeeds (made by a setup if needed).
CALLS: dict[str, Callable[[Conn], dict[str, Any]]] = {
    "cancel_brief_jobs_for_date": lambda _: {"p_user_id": uuid4()},
    "cancel_job_with_reason": lambda _: {"p_job_id": uuid4()},
    "cancel_jobs_atomic": lambda _: {"p_user_id": uuid4(), "p_job_type": "t"},
    "complete_queue_job": lambda _: {"p_job_id": uuid4(), "p_processing_token": uuid4()},
    "complete_queue_jobs": lambda _: {"p_job_ids": [uuid4()], "p_processing_tokens": [uuid4()]},
    "create_sms_link": _delivery,
    "get_notification_trace": lambda _: {},
    "opt_out_user_channel": lambda _: {"p_user_id": uuid4(), "p_channel": "sms", "p_reason": None},
    "record_sms_link_click": lambda _: {},
    "get_notification_channel_performance": lambda _: {},
    "get_delivery_status_counts": lambda _: {},
    "get_channel_funnel_in_slices": lambda _: {},
    "get_notification_event_performance": lambda _: {},
    "get_notification_overview": lambda _: {},
    "get_recent_failed_deliveries": lambda _: {},
    "get_sms_notification_stats": lambda _: {},
    "apply_delivery_status": lambda conn: {**_delivery(conn), "p_status": "sent"},
    "record_email_event": lambda _: {"p_tracking_id": "unknown", "p_event": "click"},
    "update_sms_status_atomic": lambda _: {
        "p_message_id": uuid4(),
        "p_twilio_sid": None,
        "p_twilio_status": "sent",
    },
    "emit_notification_event": lambda _: {"p_event_type": "x", "p_payload": Jsonb({})},
    "queue_sms_message": lambda _: {
        "p_user_id": uuid4(),
        "p_phone_number": "+15550100",
        "p_message": "hello",
    },
    "create_tracking_link": lambda conn: {"p_delivery_id": make_delivery(conn, "sms")[0]},
    "record_sms_metric": lambda _: {
        "p_metric_date": date(2026, 1, 1),
        "p_metric_hour": None,
        "p_user_id": None,
        "p_metric_type": "sent_count",
        "p_metric_value": 1,
    },
    "upsert_email_suppression": lambda _: {
        "p_email": "a@example.com",
        "p_scope": "all",
        "p_reason": "manual",
        "p_source": "admin",
    },
    "is_email_suppressed": lambda _: {"p_email": "a@example.com", "p_scope": "all"},
    "list_queue_jobs": lambda _: {},
    "list_notification_deliveries": lambda _: {},
    "check_window": lambda _: {"p_parameter": "p_value"},
}


def _json_of_size(conn: Conn, size: int) -> Jsonb:
    """A JSON object whose binary form is exactly ``size`` bytes."""
    overhead = conn.execute("SELECT pg_column_size(jsonb_build_object('k', ''))").fetchone()
    assert overhead is not None
    value = {"k": "x" * (size - overhead[0])}
    measured = conn.execute("SELECT pg_column_size(%s::jsonb)", (Jsonb(value),)).fetchone()
    assert measured == (size,)
    return Jsonb(value)


_URL = "https://example.com/"
# Text parameters with a form (URL, interval, word, date): a valid value of n characters.
_TEXT: dict[str, Callable[[int], str]] = {
    "p_url": lambda n: _URL + "x" * (n - len(_URL)),
    "p_destination_url": lambda n: _URL + "x" * (n - len(_URL)),
    "p_interval": lambda n: "7 days".rjust(n, "0"),  # leading zeros: still 7 days
    "p_value": lambda n: "7 days".rjust(n, "0"),  # check_window's interval text
    "p_event": "click".rjust,  # record_email_event trims it
    "p_mapped_status": "sent".rjust,  # update_sms_status_atomic trims it
    "p_brief_date": lambda n: "2026-01-01" + "1" * (n - 10),
}


def _value(conn: Conn, parameter: str, size: int, unit: str) -> object:
    """A valid value of exactly ``size`` characters (bytes) for the parameter."""
    if unit == "bytes":
        value = _json_of_size(conn, size)
        return [value] if parameter == "p_results" else value
    return _TEXT[parameter](size) if parameter in _TEXT else "x" * size


CASES = [row for row in documented_bounds() if row[0] in CALLS]


def test_the_table_is_read() -> None:
    assert len(CASES) >= 35
    assert {row[0] for row in CASES} == set(CALLS)


@pytest.mark.parametrize(
    ("function", "parameter", "bound", "unit"), CASES, ids=[f"{r[0]}-{r[1]}" for r in CASES]
)
def test_bound_is_inclusive_and_one_more_is_refused(
    service_db: Conn, function: str, parameter: str, bound: int, unit: str
) -> None:
    args = CALLS[function](service_db)
    call_value(
        service_db, function, {**args, parameter: _value(service_db, parameter, bound, unit)}
    )
    over = _value(service_db, parameter, bound + 1, unit)
    with pytest.raises(InvalidArgument) as raised:
        call_value(service_db, function, {**args, parameter: over})
    assert raised.value.parameter == parameter
