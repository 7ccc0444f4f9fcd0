"""The notify-sql command line, run as a real process."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest

from notify_sql.migrator import inspect


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "notify_sql", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("notify-sql: error: ")
    assert text in result.stderr


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("not a dsn at all", "invalid DSN"),
        ("host=127.0.0.1 port=1 dbname=x user=x", "cannot connect"),
        ("postgresql://nobody@/nowhere?host=/nonexistent-socket-dir", "cannot connect"),
    ],
)
def test_bad_dsn_is_one_line_and_exit_2(dsn: str, message: str) -> None:
    for command in ("migrate", "status", "verify"):
        assert_one_line_error(run(command, "--dsn", dsn), message)


def test_missing_dsn_and_bad_schema_are_exit_2(dsn: str) -> None:
    env = {"DATABASE_URL": ""}
    assert_one_line_error(run("migrate", env=env), "--dsn or set DATABASE_URL")
    assert_one_line_error(run("migrate", "--dsn", dsn, "--schema", "Robert'); DROP"), "schema")
    assert_one_line_error(run("render", "--schema", "pg_catalog"), "schema")
    assert_one_line_error(run("no-such-command"), "No such command")


def test_dsn_comes_from_database_url(empty_dsn: str) -> None:
    first = run("migrate", env={"DATABASE_URL": empty_dsn})
    assert first.returncode == 0, first.stderr
    assert "applied migration" in first.stdout
    second = run("migrate", env={"DATABASE_URL": empty_dsn})
    assert second.returncode == 0
    assert second.stdout.strip() == "nothing to do: schema notify is up to date"


def test_dry_run_prints_sql_and_changes_nothing(empty_dsn: str) -> None:
    result = run("migrate", "--dsn", empty_dsn, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "dry run" in result.stdout and "CREATE FUNCTION" in result.stdout
    with psycopg.connect(empty_dsn) as conn:
        assert conn.execute("SELECT to_regnamespace('notify')").fetchone() == (None,)


def test_status_and_verify_report_drift_then_clean(dsn: str) -> None:
    clean = run("verify", "--dsn", dsn)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "matches the files" in clean.stdout
    with psycopg.connect(dsn, autocommit=True) as conn:
        victim = inspect(dsn).up_to_date[0]
        conn.execute(
            f"CREATE FUNCTION notify.{victim}(p_extra bytea) RETURNS int "
            "LANGUAGE sql AS $$ SELECT 1 $$"
        )
    drift = run("verify", "--dsn", dsn)
    assert drift.returncode == 1
    assert f"function {victim}(p_extra bytea) was added" in drift.stdout
    status = run("status", "--dsn", dsn)
    assert status.returncode == 0
    assert "1 changed" in status.stdout and f"changed    {victim}" in status.stdout
    repaired = run("migrate", "--dsn", dsn)
    assert f"applied function {victim}" in repaired.stdout
    assert run("verify", "--dsn", dsn).returncode == 0


def test_render_needs_no_database() -> None:
    result = run("render", "--schema", "public", env={"DATABASE_URL": ""})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("-- notify-sql install script for schema public")
    assert "@schema@" not in result.stdout
    assert result.stdout.rstrip().endswith("COMMIT;")


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("notify-sql, version ")
