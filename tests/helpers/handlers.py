"""Job handlers for the worker command tests (``tests.helpers.handlers:slow``)."""

from __future__ import annotations

import time

from notify_sql.worker import ClaimedJob


def noop(job: ClaimedJob) -> None:
    return None


def slow(job: ClaimedJob) -> None:
    """Sleeps ``metadata.seconds`` (0.3 by default): a job long enough to interrupt."""
    time.sleep(float(job.metadata.get("seconds", 0.3)))
