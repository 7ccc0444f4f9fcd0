"""Calls released at the same instant from several connections, for race tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg
from psycopg import sql

T = TypeVar("T")


def released_together(
    dsn: str, calls: list[Callable[[psycopg.Connection[Any]], T]], role: str | None = None
) -> list[T]:
    """Runs each call in its own thread on its own autocommit connection (acting as
    ``role`` when given), all released at once by a barrier; returns the results in call
    order and re-raises the first failure."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[[psycopg.Connection[Any]], T]) -> T:
        with psycopg.connect(dsn, autocommit=True) as conn:
            if role is not None:
                conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
            start.wait()
            return call(conn)

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))
