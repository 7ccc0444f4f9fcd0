"""Calling notify-sql functions from Python: one place that builds the SQL.

Wrappers stay thin: they name the function, pass named arguments (the contract's
argument names are the API) and say which row type comes back. Each call is one
statement, so it is atomic by itself; committing is the caller's choice (use an
autocommit connection for workers).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import class_row, dict_row
from psycopg.types.json import Jsonb

from notify_sql.errors import InvalidArgument

DEFAULT_SCHEMA = "notify"

Row = TypeVar("Row")

_PARAMETER = re.compile(r"^(p_[a-z0-9_]+)\b")


def _adapt(value: object) -> object:
    if isinstance(value, Mapping):
        return Jsonb(dict(value))
    return value


def _query(schema: str, function: str, args: Mapping[str, object]) -> sql.Composed:
    named = sql.SQL(", ").join(
        sql.SQL("{} => {}").format(sql.Identifier(name), sql.Placeholder(name)) for name in args
    )
    return sql.SQL("SELECT * FROM {}.{}({})").format(
        sql.Identifier(schema), sql.Identifier(function), named
    )


def _params(args: Mapping[str, object]) -> dict[str, object]:
    return {name: _adapt(value) for name, value in args.items()}


def _translate(error: psycopg.Error) -> Exception:
    if error.sqlstate == "22023":
        message = error.diag.message_primary or str(error)
        match = _PARAMETER.match(message)
        return InvalidArgument(message, parameter=match.group(1) if match else None)
    return error


def call_rows(
    conn: psycopg.Connection[Any],
    function: str,
    args: Mapping[str, object],
    row_type: type[Row],
    schema: str = DEFAULT_SCHEMA,
) -> list[Row]:
    """Call a set-returning function; each row becomes a ``row_type``."""
    try:
        with conn.cursor(row_factory=class_row(row_type)) as cur:
            cur.execute(_query(schema, function, args), _params(args))
            return cur.fetchall()
    except psycopg.Error as error:
        raise _translate(error) from error


def call_value(
    conn: psycopg.Connection[Any],
    function: str,
    args: Mapping[str, object],
    schema: str = DEFAULT_SCHEMA,
) -> Any:
    """Call a scalar function and return its value."""
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(_query(schema, function, args), _params(args))
            row = cur.fetchone()
    except psycopg.Error as error:
        raise _translate(error) from error
    assert row is not None
    return next(iter(row.values()))


async def acall_rows(
    conn: psycopg.AsyncConnection[Any],
    function: str,
    args: Mapping[str, object],
    row_type: type[Row],
    schema: str = DEFAULT_SCHEMA,
) -> list[Row]:
    """Async twin of :func:`call_rows`."""
    try:
        async with conn.cursor(row_factory=class_row(row_type)) as cur:
            await cur.execute(_query(schema, function, args), _params(args))
            return await cur.fetchall()
    except psycopg.Error as error:
        raise _translate(error) from error


async def acall_value(
    conn: psycopg.AsyncConnection[Any],
    function: str,
    args: Mapping[str, object],
    schema: str = DEFAULT_SCHEMA,
) -> Any:
    """Async twin of :func:`call_value`."""
    try:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(_query(schema, function, args), _params(args))
            row = await cur.fetchone()
    except psycopg.Error as error:
        raise _translate(error) from error
    assert row is not None
    return next(iter(row.values()))
