"""A `--schema public` install (the Supabase drop-in layout), one fresh database per
test, copied from a template migrated once per server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from notify_sql.migrator import migrate
from notify_sql.throwaway import ThrowawayPostgres
from tests.conftest import _janitor

PUBLIC_TEMPLATE = "notify_public_template"


@pytest.fixture(scope="session")
def public_template(pg_server: ThrowawayPostgres) -> Iterator[str]:
    janitor = _janitor(pg_server, PUBLIC_TEMPLATE, as_template=True)
    janitor.init()
    migrate(pg_server.dsn(PUBLIC_TEMPLATE), "public")
    yield PUBLIC_TEMPLATE
    janitor.drop()


_count = iter(range(1_000_000))


@pytest.fixture
def public_dsn(pg_server: ThrowawayPostgres, public_template: str) -> Iterator[str]:
    """A new database with notify-sql installed in schema ``public``."""
    name = f"public_{os.getpid()}_{next(_count)}"
    janitor = _janitor(pg_server, name, template_dbname=public_template)
    janitor.init()
    yield pg_server.dsn(name)
    janitor.drop()


@pytest.fixture
def public_db(public_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit superuser connection (setup and checks); calls go through
    tests.helpers.postgrest.rpc, which acts as service_role."""
    with psycopg.connect(public_dsn, autocommit=True) as conn:
        yield conn
