"""The pytest plugin gives a user's own test suite a working ``notify_dsn`` per test, on
every backend available here; it starts nothing unless a test asks for the fixture."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from notify_sql.pytest_plugin import _available, docker_problem
from notify_sql.throwaway import ThrowawayPostgres

# A user's test module: two tests, each in a database of its own with notify-sql
# installed; whichever runs second must not see the other's job.
USER_TESTS = """
import psycopg
import uuid

SEEN = set()

def _use(notify_dsn):
    with psycopg.connect(notify_dsn, autocommit=True) as conn:
        name = conn.execute("SELECT current_database()").fetchone()[0]
        jobs = conn.execute("SELECT count(*) FROM notify.queue_jobs").fetchone()[0]
        conn.execute("SET ROLE service_role")
        conn.execute(
            "SELECT notify.add_queue_job(%s, 'welcome_mail', '{}'::jsonb)", (uuid.uuid4(),)
        )
    assert jobs == 0, "each test starts from a fresh copy"
    assert name not in SEEN
    SEEN.add(name)

def test_first(notify_dsn):
    _use(notify_dsn)

def test_second(notify_dsn):
    _use(notify_dsn)
"""


def run_user_suite(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, backend: str, **env: str
) -> pytest.RunResult:
    monkeypatch.setenv("NOTIFY_SQL_TEST_BACKEND", backend)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    pytester.makepyfile(test_user=USER_TESTS)
    return pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=300)


@pytest.mark.parametrize("backend", ["local", "embedded"])
def test_notify_dsn_on_a_throwaway_server(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    problem = _available(backend)
    if problem:
        pytest.skip(f"backend {backend}: {problem}")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    run_user_suite(pytester, monkeypatch, backend).assert_outcomes(passed=2)


def test_notify_dsn_on_the_database_url_server(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, pg_server: ThrowawayPostgres
) -> None:
    """Databases are created on DATABASE_URL's server and dropped again afterwards."""

    def leftovers() -> list[Any]:
        with psycopg.connect(pg_server.dsn()) as conn:
            return conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE 'notify_sql_%'"
            ).fetchall()

    before = leftovers()
    result = run_user_suite(pytester, monkeypatch, "url", DATABASE_URL=pg_server.dsn())
    result.assert_outcomes(passed=2)
    assert leftovers() == before


def test_auto_prefers_the_database_url_server(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, pg_server: ThrowawayPostgres
) -> None:
    pytester.makepyfile(
        test_which="def test_which(notify_sql_server):\n"
        "    print('BACKEND', notify_sql_server.backend)\n"
    )
    monkeypatch.setenv("DATABASE_URL", pg_server.dsn())
    monkeypatch.delenv("NOTIFY_SQL_TEST_BACKEND", raising=False)
    result = pytester.runpytest_subprocess("-q", "-s", "-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["BACKEND url"])


def test_notify_dsn_on_a_testcontainers_server(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    problem = docker_problem()
    if problem:
        pytest.skip(f"testcontainers backend: {problem}")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    run_user_suite(pytester, monkeypatch, "testcontainers").assert_outcomes(passed=2)


def test_nothing_starts_unless_the_fixture_is_used(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forced onto a backend that cannot work here, a suite that never asks for
    notify_dsn still passes: the plugin only looks for a server when the fixture is set up."""
    monkeypatch.setenv("NOTIFY_SQL_TEST_BACKEND", "url")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    pytester.makepyfile(test_uses="def test_uses(notify_dsn):\n    pass\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "test_uses.py")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*notify_dsn has no PostgreSQL server (url: DATABASE_URL is not set)*"]
    )


def test_an_unknown_backend_is_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SQL_TEST_BACKEND", "sqlite")
    pytester.makepyfile(test_uses="def test_uses(notify_dsn):\n    pass\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*NOTIFY_SQL_TEST_BACKEND=sqlite: use one of auto, url*"])
