"""`notify-sql demo` tells the end-to-end story, on a given or a throwaway database."""

from __future__ import annotations

import subprocess
import sys

EXPECTED = (
    "3 deliveries and 3 send_notification jobs",
    "completed 3 in one call",
    "Twilio says 'sent'       -> SMS changed: False delivery changed: False",
    "delivery sms     is now clicked",
    "the old worker's complete -> False, the new worker's -> True",
    "email   sent 1 delivered 1 opened 1 clicked 1 failed 0 delivery rate 100.00%",
)


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "notify_sql", "demo", *args],
        capture_output=True, text=True, check=False, timeout=180,
    )  # fmt: skip


def test_demo_in_a_given_database(empty_dsn: str) -> None:
    result = run_demo("--dsn", empty_dsn)
    assert result.returncode == 0, result.stderr
    for line in EXPECTED:
        assert line in result.stdout


def test_demo_on_a_throwaway_server() -> None:
    result = run_demo()
    assert result.returncode == 0, result.stderr
    assert "started a throwaway PostgreSQL" in result.stdout
    assert result.stdout.rstrip().endswith("stopped and removed the throwaway server")
    for line in EXPECTED:
        assert line in result.stdout
