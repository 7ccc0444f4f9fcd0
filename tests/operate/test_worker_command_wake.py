"""``notify-sql worker`` claims a rate-limited key's jobs at each new token, with a poll
interval of 30 s: the command runs the Worker class, which asks next_limited_start()
before it waits (tests/queue/test_queue_worker_wake.py has the details)."""

from __future__ import annotations

import signal
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from tests.helpers.reliability import wait_until
from tests.operate.test_worker_command import statuses, workers

Conn = psycopg.Connection[Any]


def test_the_command_claims_a_throttled_key_at_each_token(
    dsn: str, db: Conn, tmp_path: Path
) -> None:
    db.execute("SELECT notify.set_queue_limit('k', %s, NULL, 1)", (Decimal(2),))
    jobs = [{"job_type": "t", "limit_key": "k", "metadata": {"seconds": 0}}] * 4
    db.execute("SELECT notify.add_queue_jobs(%s)", (Jsonb(jobs),))
    args = ("--poll-interval", "30", "--no-maintenance")  # the last --poll-interval wins
    with workers(dsn, tmp_path, *args) as (worker,):
        # 1.5 s of tokens; at the poll interval it would take 90 s.
        wait_until(lambda: statuses(db) == {"completed": 4}, 10, "the throttled jobs")
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0
    gaps = db.execute(
        "SELECT extract(epoch FROM started_at - lag(started_at) OVER (ORDER BY started_at))"
        "::float8 FROM notify.queue_jobs ORDER BY started_at OFFSET 1"
    ).fetchall()
    assert all(0.5 - 0.005 <= gap < 2.5 for (gap,) in gaps), gaps
