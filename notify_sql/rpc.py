"""Calling notify-sql functions from Python: the one place that builds and runs the SQL.

The wrapper classes (``notify_sql.wrappers``) are generated from the catalog by
``python -m notify_sql.codegen``; each method hands this module a :class:`Function`
(name and parameter types, read from ``pg_proc``) and the arguments the caller gave.
An argument left at :data:`OMIT` is not sent at all, so PostgreSQL applies the
function's own default: the defaults live in SQL only. Each call is one statement,
atomic by itself; committing is the caller's choice (workers use autocommit).
Bad input raises :class:`~notify_sql.errors.InvalidArgument` (SQLSTATE 22023).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from typing import Any, Final, Literal, TypeAlias, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import BaseRowFactory, class_row, tuple_row
from psycopg.types.json import Json, Jsonb

from notify_sql.errors import InvalidArgument

DEFAULT_SCHEMA = "notify"

Row = TypeVar("Row")

_PARAMETER = re.compile(r"^(p_[a-z0-9_]+)\b")


class Omitted(Enum):
    """The marker of an argument the caller did not give (None means SQL NULL)."""

    OMIT = "OMIT"

    def __repr__(self) -> str:
        return "OMIT"


OMIT: Final = Omitted.OMIT
Omit: TypeAlias = Literal[Omitted.OMIT]


def wake_channel(schema: str = DEFAULT_SCHEMA) -> str:
    """The LISTEN/NOTIFY channel enqueues signal on (payload: the job type)."""
    return f"{schema}.queue_jobs"


@dataclass(frozen=True)
class Parameter:
    """One input parameter: its SQL name and the type it is cast to (None: no cast,
    for pseudo-types and types outside ``pg_catalog``)."""

    sql_name: str
    sql_type: str | None


@dataclass(frozen=True)
class Function:
    """What a wrapper needs to call one SQL function: its name and its parameters,
    keyed by their Python names."""

    name: str
    parameters: Mapping[str, Parameter] = field(default_factory=dict)

    def prepare(self, schema: str, args: Mapping[str, object]) -> tuple[sql.Composed, list[object]]:
        given = [
            (self.parameters[name], value) for name, value in args.items() if value is not OMIT
        ]
        query = _query(schema, self.name, tuple(parameter for parameter, _ in given))
        return query, [_adapt(parameter.sql_type, value) for parameter, value in given]


@lru_cache(maxsize=1024)
def _query(schema: str, function: str, given: tuple[Parameter, ...]) -> sql.Composed:
    """``SELECT * FROM schema.f(p_a => $1::type, ...)`` naming only the given arguments;
    the casts pick the one overload and type NULLs and empty arrays."""
    named = []
    for parameter in given:
        value: sql.Composable = sql.SQL("%s")
        if parameter.sql_type is not None:
            value = sql.SQL("%s::{}").format(sql.SQL(parameter.sql_type))
        named.append(sql.SQL("{} => {}").format(sql.Identifier(parameter.sql_name), value))
    return sql.SQL("SELECT * FROM {}.{}({})").format(
        sql.Identifier(schema), sql.Identifier(function), sql.SQL(", ").join(named)
    )


def _adapt(sql_type: str | None, value: object) -> object:
    """Python values psycopg cannot send as they are: JSON documents and sequences."""
    if value is None:
        return None
    if sql_type is None and isinstance(value, Mapping):  # untyped call: a JSON object
        return Jsonb(value)
    if sql_type in ("jsonb", "json"):
        return Jsonb(value) if sql_type == "jsonb" else Json(value)
    if sql_type is not None and sql_type.endswith("[]") and isinstance(value, Sequence):
        element = sql_type[:-2]
        return [_adapt(element, item) for item in value]
    return value


@contextmanager
def _translated() -> Iterator[None]:
    """SQLSTATE 22023 becomes :class:`InvalidArgument` naming the parameter (the message
    starts with it); every other database error passes through unchanged."""
    try:
        yield
    except psycopg.Error as error:
        if error.sqlstate != "22023":
            raise
        message = error.diag.message_primary or str(error)
        match = _PARAMETER.match(message)
        raise InvalidArgument(message, parameter=match.group(1) if match else None) from error


def _first(rows: list[Row]) -> Row | None:
    return rows[0] if rows else None


class SyncRpc:
    """Base of the generated sync wrapper classes: a connection and a schema."""

    def __init__(self, conn: psycopg.Connection[Any], schema: str = DEFAULT_SCHEMA) -> None:
        self.conn = conn
        self.schema = schema

    def _fetch(
        self, function: Function, rows: BaseRowFactory[Row], args: Mapping[str, object]
    ) -> list[Row]:
        query, params = function.prepare(self.schema, args)
        with _translated(), self.conn.cursor(row_factory=rows) as cur:
            cur.execute(query, params)
            return cur.fetchall()

    def _rows(
        self, function: Function, row_type: type[Row], args: Mapping[str, object]
    ) -> list[Row]:
        return self._fetch(function, class_row(row_type), args)

    def _values(self, function: Function, args: Mapping[str, object]) -> list[Any]:
        return [row[0] for row in self._fetch(function, tuple_row, args)]

    def _value(self, function: Function, args: Mapping[str, object]) -> Any:
        return _first(self._values(function, args))


class AsyncRpc:
    """Base of the generated async wrapper classes (psycopg ``AsyncConnection``)."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], schema: str = DEFAULT_SCHEMA) -> None:
        self.conn = conn
        self.schema = schema

    async def _fetch(
        self, function: Function, rows: BaseRowFactory[Row], args: Mapping[str, object]
    ) -> list[Row]:
        query, params = function.prepare(self.schema, args)
        with _translated():
            async with self.conn.cursor(row_factory=rows) as cur:
                await cur.execute(query, params)
                return await cur.fetchall()

    async def _rows(
        self, function: Function, row_type: type[Row], args: Mapping[str, object]
    ) -> list[Row]:
        return await self._fetch(function, class_row(row_type), args)

    async def _values(self, function: Function, args: Mapping[str, object]) -> list[Any]:
        return [row[0] for row in await self._fetch(function, tuple_row, args)]

    async def _value(self, function: Function, args: Mapping[str, object]) -> Any:
        return _first(await self._values(function, args))


def _untyped(function: str, args: Mapping[str, object]) -> Function:
    return Function(function, {name: Parameter(name, None) for name in args})


def call_rows(
    conn: psycopg.Connection[Any],
    function: str,
    args: Mapping[str, object],
    row_type: type[Row],
    schema: str = DEFAULT_SCHEMA,
) -> list[Row]:
    """Calls a function that has no wrapper (an internal helper) with named arguments
    ``{'p_name': value}`` sent untyped; each row becomes a ``row_type``."""
    return SyncRpc(conn, schema)._rows(_untyped(function, args), row_type, args)


def call_value(
    conn: psycopg.Connection[Any],
    function: str,
    args: Mapping[str, object],
    schema: str = DEFAULT_SCHEMA,
) -> Any:
    """Like :func:`call_rows`, returning the first column of the first row."""
    return SyncRpc(conn, schema)._value(_untyped(function, args), args)
