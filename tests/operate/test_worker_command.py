"""``notify-sql worker`` as a real process: log lines, clean stops on SIGTERM and SIGINT,
automatic rescue of a SIGKILLed worker's jobs, upkeep leader failover, bad arguments."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from notify_sql.wrappers import Queue
from tests.helpers.queue import new_job
from tests.helpers.reliability import wait_until, worker_dsn

Conn = psycopg.Connection[Any]
ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    def __init__(self, dsn: str, log: Path, *args: str) -> None:
        self.log = log
        with log.open("w") as stderr:
            self.process = subprocess.Popen(
                [
                    sys.executable, "-m", "notify_sql", "worker", "tests.helpers.handlers:slow",
                    "--job-type", "t", "--dsn", worker_dsn(dsn), "--poll-interval", "0.2", *args,
                ],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr,
            )  # fmt: skip

    def text(self) -> str:
        return self.log.read_text()

    def signal(self, signum: int) -> None:
        os.kill(self.process.pid, signum)

    def wait(self, timeout: float = 60) -> int:
        return self.process.wait(timeout)


@contextmanager
def workers(
    dsn: str, tmp_path: Path, *args: str, name: str = "worker"
) -> Iterator[list[WorkerProcess]]:
    started = [WorkerProcess(dsn, tmp_path / f"{name}.log", *args)]
    try:
        yield started
    finally:
        for worker in started:
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait()


def statuses(db: Conn) -> dict[str, int]:
    return dict(db.execute("SELECT status, count(*) FROM notify.queue_jobs GROUP BY 1").fetchall())


def enqueue(db: Conn, count: int, seconds: float) -> None:
    Queue(db).add_queue_jobs([new_job("t", {"seconds": seconds}) for _ in range(count)])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_batch_finishes_the_job_in_hand_and_releases_the_rest(
    dsn: str, db: Conn, tmp_path: Path, signum: int
) -> None:
    enqueue(db, 5, 0.5)
    with workers(dsn, tmp_path, "--batch-size", "5", "--no-maintenance") as (worker,):
        wait_until(lambda: statuses(db).get("processing") == 5, 30, "the batch to be claimed")
        time.sleep(0.1)  # the first handler is running
        worker.signal(signum)
        assert worker.wait() == 0
    log = worker.text()
    assert "Traceback" not in log
    assert statuses(db) == {"completed": 1, "pending": 4}
    assert db.execute("SELECT max(attempts) FILTER (WHERE status = 'pending') "
                      "FROM notify.queue_jobs").fetchone() == (0,)  # fmt: skip
    assert re.search(r"INFO worker started pid=\d+ job_types=t batch_size=5 concurrency=1", log)
    assert "INFO batch claimed=5 completed=1 failed=0 retried=0 released=4" in log
    assert "INFO worker stopped completed=1 failed=0 retried=0 released=4 fenced=0" in log


def test_log_lines_show_up_while_running_and_the_stop_line_is_last(
    dsn: str, db: Conn, tmp_path: Path
) -> None:
    """The command's lines are block-buffered (see operate._BufferedStderrHandler): a
    batch line must still show up within a fraction of a second, the process running,
    and the stop line must be written at a clean stop."""
    with workers(dsn, tmp_path, "--no-maintenance") as (worker,):
        wait_until(lambda: "worker started" in worker.text(), 30, "the start line")
        enqueue(db, 1, 0)
        wait_until(lambda: statuses(db) == {"completed": 1}, 30, "the job to complete")
        # The line is logged just after the completion commits; 2 s is a generous bound
        # for the flush every 0.2 s on a loaded machine (never flushed: it never shows).
        wait_until(lambda: "INFO batch claimed=1 completed=1" in worker.text(), 2, "a batch line")
        assert worker.process.poll() is None
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0
    lines = worker.text().splitlines()
    assert "INFO worker stopped completed=1 failed=0" in lines[-1], lines[-3:]
    assert any("INFO stopping signal=SIGTERM" in line for line in lines), lines


@pytest.mark.parametrize("concurrency", ["1", "4"])
def test_a_second_signal_releases_the_jobs_in_hand(
    dsn: str, db: Conn, tmp_path: Path, concurrency: str
) -> None:
    enqueue(db, 4, 60)
    args = ("--batch-size", "4", "--concurrency", concurrency, "--no-maintenance")
    with workers(dsn, tmp_path, *args) as (worker,):
        wait_until(lambda: statuses(db).get("processing") == 4, 30, "the batch to be claimed")
        time.sleep(0.2)
        worker.signal(signal.SIGINT)
        time.sleep(0.2)
        worker.signal(signal.SIGTERM)
        assert worker.wait(20) == 0
    assert "Traceback" not in worker.text()
    assert statuses(db) == {"pending": 4}


def test_jobs_of_a_killed_worker_are_rescued_by_the_others_without_any_call(
    dsn: str, db: Conn, tmp_path: Path
) -> None:
    enqueue(db, 30, 0.05)
    args = ("--stall-timeout", "2", "--batch-size", "10")
    with workers(dsn, tmp_path, *args) as (victim,):
        wait_until(lambda: statuses(db).get("processing", 0) > 0, 30, "a claim")
        victim.signal(signal.SIGKILL)
        victim.wait()
        assert statuses(db).get("processing", 0) > 0  # left behind by the killed worker
        with workers(dsn, tmp_path, *args, name="survivor") as (survivor,):
            wait_until(lambda: statuses(db) == {"completed": 30}, 60, "every job to complete")
            survivor.signal(signal.SIGTERM)
            assert survivor.wait() == 0
    # attempts counts the earlier attempts: the stall reset counted the killed worker's
    # claim, nothing else fails here, so a rescued job has 1 and every other one 0.
    rescued = dict(
        db.execute("SELECT attempts, count(*) FROM notify.queue_jobs GROUP BY 1").fetchall()
    )
    assert set(rescued) <= {0, 1} and rescued.get(1, 0) > 0, rescued
    assert "upkeep reset_stalled=" in survivor.text()


def _leaders(db: Conn) -> int:
    """Sessions holding the upkeep lock (idle workers hold other advisory locks too: the
    shared "idle" mark of the wake-up). A bigint key shows as classid (high 32 bits),
    objid (low 32 bits), objsubid 1."""
    row = db.execute(
        "SELECT count(*) FROM pg_locks, "
        "(SELECT hashtext('notify-sql upkeep notify')::bigint AS k) AS upkeep "
        "WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
        "AND classid::bigint = (k >> 32) & 4294967295 AND objid::bigint = k & 4294967295"
    ).fetchone()
    return int(row[0]) if row else 0


def test_upkeep_leadership_moves_when_the_leader_dies(dsn: str, db: Conn, tmp_path: Path) -> None:
    with workers(dsn, tmp_path, "--stall-timeout", "1") as (leader,):
        wait_until(lambda: "upkeep leader=yes" in leader.text(), 30, "a leader")
        with workers(dsn, tmp_path, "--stall-timeout", "1", name="follower") as (follower,):
            wait_until(lambda: "worker started" in follower.text(), 30, "the second worker")
            time.sleep(1)  # several election ticks: the follower must not lead too
            assert "upkeep leader=yes" not in follower.text()
            assert _leaders(db) == 1
            leader.signal(signal.SIGKILL)
            wait_until(lambda: "upkeep leader=yes" in follower.text(), 30, "the follower to lead")
            assert _leaders(db) == 1
            follower.signal(signal.SIGTERM)
            assert follower.wait() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("tests.helpers.handlers:slow",), "Missing option '--job-type'"),
        (("nowhere", "--job-type", "t"), "MODULE:FUNCTION"),
        (("no_such_module:f", "--job-type", "t"), "cannot import"),
        (("tests.helpers.handlers:nothing", "--job-type", "t"), "has no function"),
        (("tests.helpers.handlers:slow", "--job-type", "t", "--concurrency", "0"), "concurrency"),
        (("tests.helpers.handlers:slow", "--job-type", "t", "--stall-timeout", "x"), "stall"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    dsn: str, args: tuple[str, ...], message: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "notify_sql", "worker", *args, "--dsn", dsn],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
