"""Hostile input for every RPC: only documented errors, never an internal one, never a
partial write.

Every function file in ``sql/functions`` is a test case; its signature is read from the
catalog, so a new RPC (or a changed argument list) is covered without editing this
file. Functions not executable by ``service_role`` are skipped (they are covered by the
security tests). Each call runs as ``service_role`` with arguments drawn by Hypothesis
per argument type: NULLs, empty and huge strings, unicode (NUL included), values that
do not parse as the type, wrong JSON types, extreme numbers, timestamps and intervals,
and also realistic values (existing ids, known statuses) so calls reach deep paths.

The accepted outcomes, i.e. the documented error surface:

* success;
* SQLSTATE 22023 (invalid_parameter_value): the functions' own validation. Whether the
  message names the right parameter is not judged here but by each domain's named
  cases (tests/queue/test_queue_validation.py, the analytics and deliveries tests) and
  by the table-driven bound tests (tests/security/test_bounds.py): this file is the
  one home of generic fuzzing, they are the home of specific rules;
* any other class 22 (data exception: 22P02 invalid text, 22003 / 22008 / 22015 out of
  range, 22P05 ``\\u0000`` in JSON, ...) raised while PostgreSQL parses an argument,
  before the function runs (the error context names no function);
* ``psycopg.DataError`` raised client-side for a text argument holding NUL, which
  PostgreSQL text cannot store (psycopg refuses to send it).

Anything else fails: an internal error (XX000), an undeclared RAISE (P0001), a
constraint violation (23xxx: input that should have been refused with 22023), a class
22 error from inside a function body (input that slipped past validation), a call
cut off by the CALL_TIMEOUT guard (unbounded work for its input), a result the client
cannot load (an 'infinity' timestamp). After every call that raised, the row count of
every table of the install must be unchanged. ``NOTIFY_SQL_HOSTILE_EXAMPLES`` (default
60) sets the number of examples per function.
"""

from __future__ import annotations

import json
import os
import random
import string
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from psycopg.types.json import Jsonb

from notify_sql.sources import load_functions
from tests.helpers.reliability import Conn

SCHEMA = "notify"
# A guard, not a speed check: no call on these tiny tables may need more; one that does
# is doing unbounded work for its input (57014 fails the test).
CALL_TIMEOUT = "3s"
EXAMPLES = int(os.environ.get("NOTIFY_SQL_HOSTILE_EXAMPLES", "60"))

# Values the functions know about, so that random calls also take the non-error paths.
VOCABULARY = [
    "send_notification", "generate_daily_brief", "reliability", "pending", "processing",
    "completed", "failed", "cancelled", "sent", "delivered", "opened", "clicked", "bounced",
    "open", "click", "bounce", "complaint", "accepted", "scheduled", "queued", "sending",
    "canceled", "undelivered", "read", "receiving", "email", "sms", "push", "in_app", "api",
    "hour", "day", "week", "7 days", "24 hours", "30 days", "-1 day", "0", "1 century",
    "2024-01-01", "https://example.com/a?b=c",
    "http://x", "javascript:alert(1)", "ftp://example.com", "+15551234567", "SM0123456789abcdef",
]  # fmt: skip


class Huge(str):
    """A long string that Hypothesis reports by its length, not its text."""

    def __repr__(self) -> str:
        return f"Huge({len(self)} chars of {self[:3]!r}...)"


# Long, compressible, multi-byte, and incompressible (so it cannot hide in TOAST).
INCOMPRESSIBLE = Huge("".join(random.Random(0).choices(string.ascii_letters, k=20_000)))
HUGE = [Huge("x" * 1_000_000), Huge("é" * 300_000), Huge(string.printable * 3000), INCOMPRESSIBLE]
GARBAGE = ["", " ", "null", "NaN", "{", "[1,", "'; DROP TABLE x; --", "\\", "\u202e\u200b", "🦀"]

text_values = st.one_of(
    st.none(),
    st.sampled_from(VOCABULARY + GARBAGE),
    st.sampled_from(HUGE),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=40),  # NUL included
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(),  # inf / nan: not JSON, refused by jsonb input
    text_values.filter(lambda value: value is None or len(value) < 100_000),
)
JSON_KEYS = ["delivery_id", "briefDate", "a", "", "\x00"]
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.sampled_from(["delivery_id", "briefDate", "a", "", "\x00"]), children, max_size=4
        ),
    ),
    max_leaves=12,
)
integers = st.one_of(
    st.none(),
    st.sampled_from([0, 1, -1, 5, 1000, 1001, 100_000, 2**31 - 1, -(2**31), 2**31, 2**63 - 1]),
    st.integers(),
)
timestamps = st.one_of(
    st.none(),
    st.datetimes(timezones=st.just(UTC)),
    st.sampled_from(["infinity", "-infinity", "epoch", "294277-01-01", "4714-11-24 BC", "now"]),
    st.text(max_size=10),
)
intervals = st.one_of(
    st.none(),
    st.timedeltas(min_value=timedelta(days=-(10**6)), max_value=timedelta(days=10**6)),
    st.sampled_from(
        ["infinity", "-infinity", "178000000 years", "-1 day", "0", "1 mon", "@ 1 minute ago"]
    ),
    st.text(max_size=10),
)


def _uuids(known: list[UUID]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(), st.sampled_from(known), st.builds(uuid4), st.sampled_from([*GARBAGE, "0" * 32])
    )


def _value_for(type_name: str, known: list[UUID]) -> st.SearchStrategy[Any]:
    """Hostile values for one argument of the given (format_type) type."""
    if type_name.endswith("[]"):
        # Elements go as text (psycopg refuses lists of mixed Python types); the cast
        # to the array type parses each one, as a PostgREST call would.
        element = _value_for(type_name[:-2], known).map(_as_text)
        return st.one_of(st.none(), st.lists(element, max_size=5), st.just([None] * 1001))
    scalars: dict[str, st.SearchStrategy[Any]] = {
        "uuid": _uuids(known),
        "jsonb": st.one_of(json_values.map(Jsonb), text_values),
        "json": st.one_of(json_values.map(Jsonb), text_values),
        "integer": integers,
        "bigint": integers,
        "smallint": integers,
        "boolean": st.one_of(st.none(), st.booleans(), st.sampled_from(["maybe", "t"])),
        "timestamp with time zone": timestamps,
        "interval": intervals,
    }
    return scalars.get(type_name, text_values)


def _as_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value.obj) if isinstance(value, Jsonb) else str(value)


@dataclass(frozen=True)
class Signature:
    name: str
    arguments: list[tuple[str, str]]  # (name, format_type)

    def call(self) -> sql.Composed:
        placeholders = sql.SQL(", ").join(
            sql.SQL("{} => {}::{}").format(sql.Identifier(arg), sql.Placeholder(), sql.SQL(kind))
            for arg, kind in self.arguments
        )
        # Rows are counted, not fetched: the function runs to completion either way, and
        # a value Python cannot hold (a timestamp past 9999, 'infinity') is not an error.
        return sql.SQL("SELECT count(*) FROM {}.{}({})").format(
            sql.Identifier(SCHEMA), sql.Identifier(self.name), placeholders
        )


def _service_signature(db: Conn, name: str) -> Signature | None:
    row = db.execute(
        """
        SELECT p.proargnames[1:p.pronargs],
               ARRAY(SELECT format_type(t, NULL)
                     FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY u(t, n) ORDER BY n)
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = %s AND p.proname = %s
          AND has_function_privilege('service_role', p.oid, 'EXECUTE')
        """,
        (SCHEMA, name),
    ).fetchone()
    if row is None:
        return None
    # A polymorphic argument (check_required's p_value) is fuzzed as text: a concrete type
    # is what any real call passes.
    kinds = ["text" if kind == "anyelement" else kind for kind in row[1]]
    return Signature(name, list(zip(row[0] or [], kinds, strict=True)))


def _seed(db: Conn) -> list[UUID]:
    """Rows for the calls to find: jobs (some claimed), deliveries, SMS; returns the ids
    of all of them plus the processing tokens of the claimed jobs."""
    db.execute(
        f"SELECT {SCHEMA}.add_queue_jobs(%s)",
        (Jsonb([{"job_type": t, "metadata": {"briefDate": "2024-01-01"}, "user_id": str(uuid4())}
                for t in ("send_notification", "generate_daily_brief", "reliability") * 4]),),
    )  # fmt: skip
    db.execute(f"SELECT * FROM {SCHEMA}.claim_pending_jobs(ARRAY['reliability'], 2)")
    db.execute(
        f"INSERT INTO {SCHEMA}.notification_deliveries (recipient_user_id, channel) "
        "SELECT gen_random_uuid(), c FROM unnest(ARRAY['email', 'sms', 'push', 'in_app']) c"
    )
    db.execute(
        f"INSERT INTO {SCHEMA}.sms_messages (user_id, phone_number, message_content, twilio_sid, "
        "notification_delivery_id) SELECT recipient_user_id, '+15551234567', 'hi', "
        f"'SM' || md5(id::text), id FROM {SCHEMA}.notification_deliveries WHERE channel = 'sms'"
    )
    rows = db.execute(
        f"""
        SELECT id FROM {SCHEMA}.queue_jobs UNION ALL SELECT user_id FROM {SCHEMA}.queue_jobs
        UNION ALL SELECT processing_token FROM {SCHEMA}.queue_jobs
                  WHERE processing_token IS NOT NULL
        UNION ALL SELECT id FROM {SCHEMA}.notification_deliveries
        UNION ALL SELECT recipient_user_id FROM {SCHEMA}.notification_deliveries
        UNION ALL SELECT id FROM {SCHEMA}.sms_messages
        """
    ).fetchall()
    return [row[0] for row in rows]


def _row_counts_query(db: Conn) -> sql.Composed:
    tables = [row[0] for row in db.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY 1", (SCHEMA,),
    ).fetchall()]  # fmt: skip
    return sql.SQL("SELECT ARRAY[{}]").format(
        sql.SQL(", ").join(
            sql.SQL("(SELECT count(*) FROM {}.{})").format(
                sql.Identifier(SCHEMA), sql.Identifier(t)
            )
            for t in tables
        )
    )


def _undocumented(error: psycopg.Error, signature: Signature) -> str | None:
    """Why ``error`` is outside the documented error surface, or None if it is inside."""
    state = error.sqlstate
    if state is None:
        return None if "NUL (0x00)" in str(error) else f"client error {error!r}"
    message = error.diag.message_primary or ""
    if state == "22023":
        return None
    in_body = "function" in (error.diag.context or "")
    if state.startswith("22") and not in_body:
        return None
    where = "inside the function" if in_body else "outside a function"
    return f"{state} {where}: {message[:200]} [{(error.diag.context or '')[:300]}]"


@pytest.fixture
def service_and_admin(dsn: str) -> Iterator[tuple[Conn, Conn]]:
    with (
        psycopg.connect(dsn, autocommit=True) as admin,
        psycopg.connect(dsn, autocommit=True, options="-c role=service_role") as service,
    ):
        service.execute(f"SET statement_timeout = '{CALL_TIMEOUT}'")
        yield service, admin


# Functions service_role may call that a migration defines (0005: they give the stored
# funnel sums their meaning; 0010: the channel CHECK constraints read it; 0011: the
# status counts' rebuild), so they change only with a migration.
MIGRATION_FUNCTIONS = [
    "delivery_funnel_of",
    "delivery_funnel_slice",
    "notification_channels",
    "rebuild_delivery_funnel_rollup",
    "rebuild_delivery_status_rollup",
]


def _function_cases() -> list[str]:
    return sorted([f.name for f in load_functions()] + MIGRATION_FUNCTIONS)


@pytest.mark.parametrize("function", _function_cases())
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_rpc_refuses_hostile_input_cleanly(
    function: str, service_and_admin: tuple[Conn, Conn], data: st.DataObject
) -> None:
    service, admin = service_and_admin
    signature = _service_signature(admin, function)
    if signature is None:
        pytest.skip(f"{function} is not executable by service_role")
    known = _known_ids(admin)
    counts = _row_counts_query(admin)
    values = [data.draw(_value_for(kind, known), label=arg) for arg, kind in signature.arguments]
    before = admin.execute(counts).fetchone()
    try:
        service.execute(signature.call(), values).fetchall()
    except psycopg.Error as error:
        problem = _undocumented(error, signature)
        assert problem is None, f"{function}: {problem}"
        assert admin.execute(counts).fetchone() == before, f"{function} wrote before raising"


_seeded: dict[str, list[UUID]] = {}


def _known_ids(admin: Conn) -> list[UUID]:
    """Seeds each test database once (Hypothesis reuses it across examples)."""
    database = admin.info.dbname
    if database not in _seeded:
        _seeded[database] = _seed(admin)
    return _seeded[database]


def test_every_service_function_is_fuzzed(db: Conn) -> None:
    """The parametrisation above covers every function service_role may call."""
    rows = db.execute(
        "SELECT DISTINCT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = %s AND has_function_privilege('service_role', p.oid, 'EXECUTE')",
        (SCHEMA,),
    ).fetchall()
    assert {row[0] for row in rows} == set(_function_cases())
