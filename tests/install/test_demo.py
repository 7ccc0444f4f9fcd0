"""`notify-sql demo` tells the end-to-end story, on a given or a throwaway database."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import psycopg

EXPECTED = (
    "3 deliveries and 3 send_notification jobs",
    "completed 3 in one call",
    "Twilio says 'sent'       -> SMS changed: False delivery changed: False",
    "delivery sms     is now clicked",
    "email provider says 'delivered' -> delivery changed: False status clicked",
    "email provider says 'bounce'    -> delivery changed: True  status clicked",
    "email provider says 'bounce'    -> delivery changed: False status clicked",
    "delivery email   is now clicked",
    "the old worker's complete -> False, the new worker's -> True",
    "email   sent 1 delivered 1 opened 1 clicked 1 failed 0 delivery rate 100.00%",
)


def run_demo(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "notify_sql", "demo", *args],
        capture_output=True, text=True, check=False, timeout=180, env={**os.environ, **env},
    )  # fmt: skip


def _schemas(dsn: str) -> set[Any]:
    with psycopg.connect(dsn) as conn:
        return {row[0] for row in conn.execute("SELECT nspname FROM pg_namespace")}


def test_demo_in_a_given_database(empty_dsn: str) -> None:
    """With --dsn the demo runs in its own schema and drops it: nothing is left behind."""
    before = _schemas(empty_dsn)
    result = run_demo("--dsn", empty_dsn)
    assert result.returncode == 0, result.stderr
    for line in EXPECTED:
        assert line in result.stdout
    assert "1. installed into schema notify_demo" in result.stdout
    assert _schemas(empty_dsn) == before


def test_demo_runs_again_in_a_kept_schema(empty_dsn: str) -> None:
    """A second run into the same schema used to fail on the Twilio SID (SM-demo)."""
    for run in (1, 2):
        result = run_demo("--dsn", empty_dsn, "--schema", "notify")
        assert result.returncode == 0, f"run {run}: {result.stderr}"
        assert "delivery sms     is now clicked" in result.stdout
    with psycopg.connect(empty_dsn) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT twilio_sid) FROM notify.sms_messages"
        ).fetchone()
    assert row == (2, 2)


def test_demo_ignores_database_url(empty_dsn: str) -> None:
    """DATABASE_URL points the other commands at a database; the demo still starts its
    own throwaway server and leaves that database untouched."""
    before = _schemas(empty_dsn)
    result = run_demo(DATABASE_URL=empty_dsn)
    assert result.returncode == 0, result.stderr
    assert "started a throwaway PostgreSQL" in result.stdout
    assert _schemas(empty_dsn) == before


def test_demo_on_a_throwaway_server() -> None:
    result = run_demo()
    assert result.returncode == 0, result.stderr
    assert "started a throwaway PostgreSQL" in result.stdout
    assert result.stdout.rstrip().endswith("stopped and removed the throwaway server")
    for line in EXPECTED:
        assert line in result.stdout
