"""Worker processes SIGKILLed and their backends terminated at random moments.

Four worker processes (the real notify_sql.worker.Worker) drain 1500 jobs while the
test, every 0.1-0.4 s, either SIGKILLs a random worker or terminates one of the workers'
backends with pg_terminate_backend, restarting whatever died; a rescuer runs
reset_stalled_jobs alongside. Then every worker is killed, the stalled jobs are reset
and a healthy worker drains the rest. Every job must end completed exactly once or
failed by policy; none may be lost.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from datetime import timedelta
from multiprocessing.context import SpawnProcess

from notify_sql.wrappers import Queue
from tests.helpers.reliability import (
    CONNECTION_LOST,
    WORKER_APPLICATION,
    Conn,
    assert_every_job_final_exactly_once,
    enqueue,
    install_completion_log,
    live_jobs,
    recover_and_drain,
    terminate_workers,
    worker_process,
)

WORKERS = 4
JOBS = 1500
CHAOS_SECONDS = 10.0


def _start(dsn: str) -> SpawnProcess:
    process = multiprocessing.get_context("spawn").Process(target=worker_process, args=(dsn,))
    process.start()
    return process


def _terminate_one_backend(db: Conn) -> bool:
    row = db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s "
        "ORDER BY random() LIMIT 1",
        (WORKER_APPLICATION,),
    ).fetchone()
    return bool(row and row[0])


def test_killed_workers_lose_no_job_and_complete_none_twice(dsn: str, db: Conn) -> None:
    install_completion_log(db)
    enqueued = enqueue(db, JOBS, poison_every=10)
    chance = random.Random()
    processes = [_start(dsn) for _ in range(WORKERS)]
    kills = terminations = 0
    try:
        deadline = time.monotonic() + CHAOS_SECONDS
        while time.monotonic() < deadline and live_jobs(db) > 0:
            time.sleep(chance.uniform(0.1, 0.4))
            if chance.random() < 0.5:
                victim = chance.choice(processes)
                if victim.pid is not None and victim.is_alive():
                    os.kill(victim.pid, signal.SIGKILL)
                    kills += 1
            elif _terminate_one_backend(db):
                terminations += 1
            for position, process in enumerate(processes):
                process.join(timeout=0)
                if process.exitcode is not None:
                    assert process.exitcode in (-signal.SIGKILL, CONNECTION_LOST), (
                        f"a worker died of something else than the faults: {process.exitcode}"
                    )
                    processes[position] = _start(dsn)
            Queue(db).reset_stalled_jobs(stall_timeout=timedelta(milliseconds=500))
    finally:
        for process in processes:
            process.kill()
            process.join(timeout=30)
    terminate_workers(db)

    recover_and_drain(dsn, db)
    counts = assert_every_job_final_exactly_once(db, enqueued)
    assert counts["failed"] >= JOBS // 10  # at least every poison job
    # attempts counts failed attempts: a stall reset is one, a poison job's failure another
    interrupted = db.execute(
        "SELECT count(*) FROM notify.queue_jobs WHERE attempts >= 1 AND NOT metadata ? 'poison'"
    ).fetchone()
    assert kills > 0
    assert terminations > 0
    assert interrupted is not None and interrupted[0] > 0, "no fault landed while a job was held"
