"""``notify-sql demo``: an end-to-end scenario on a throwaway or given database."""

from __future__ import annotations

from collections.abc import Callable

from notify_sql.migrator import migrate
from notify_sql.throwaway import throwaway_postgres

Echo = Callable[[str], None]


def _scenario(dsn: str, schema: str, echo: Echo) -> None:
    steps = migrate(dsn, schema)
    echo(f"installed into schema {schema}: {len(steps)} steps")


def run_demo(dsn: str | None, schema: str, echo: Echo) -> None:
    if dsn:
        _scenario(dsn, schema, echo)
        return
    with throwaway_postgres() as server:
        echo(f"started a throwaway PostgreSQL from {server.bindir}")
        _scenario(server.dsn(), schema, echo)
    echo("stopped and removed the throwaway server")
