"""The suite really ran against the PostgreSQL versions it claims to support."""

from __future__ import annotations

import os

import psycopg

from notify_sql.throwaway import ThrowawayPostgres, server_major_version
from tests.conftest import TEST_BINDIRS


def test_each_server_is_the_version_its_binaries_say(pg_server: ThrowawayPostgres) -> None:
    with psycopg.connect(pg_server.dsn()) as conn:
        row = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
    assert row is not None
    assert row[0] // 10000 == server_major_version(pg_server.bindir)


def test_every_required_version_is_in_this_run() -> None:
    """CI sets NOTIFY_SQL_REQUIRE_VERSIONS=15,18: every test is then parametrised over
    both servers, and this fails if either is missing."""
    required = {int(v) for v in os.environ.get("NOTIFY_SQL_REQUIRE_VERSIONS", "").split(",") if v}
    tested = {server_major_version(bindir) for bindir in TEST_BINDIRS}
    assert required <= tested, f"required {sorted(required)}, testing {sorted(tested)}"
