"""Worker overhead: the ``Worker`` class against a bare loop making the same SQL calls.

    .venv/bin/python -m bench.bench_worker                 # 10,000 no-op jobs, 3 rounds
    .venv/bin/python -m bench.bench_worker --profile       # cProfile of one Worker drain
    .venv/bin/python -m bench.bench_worker --concurrency   # also the CLI's --concurrency

BASELINE: the least a Python worker can do with notify-sql: on one autocommit
connection, ``SELECT * FROM notify.claim_pending_jobs(types, 10)``, then one
``complete_queue_jobs(ids, tokens)`` for the batch, until the queue is empty. The
``Worker`` class (batch 10, its defaults otherwise, LISTEN and the heartbeat thread
included) drains the same 10,000 no-op jobs in the same run; rounds alternate the order.

``--concurrency`` adds the worker command's engine (``Worker`` with ``concurrency``
1, 4, 16) with a no-op handler and a 20 ms sleeping handler (I/O stand-in), each as a
ratio to the ``Worker`` class at batch 10 with the same handler, measured in the same run.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time
from collections.abc import Callable

import psycopg
from psycopg import sql

from notify_sql.migrator import migrate
from notify_sql.throwaway import throwaway_postgres
from notify_sql.worker import ClaimedJob, Worker
from notify_sql.wrappers import Queue

SCHEMA = "notify"
DATABASE = "bench"
JOB_TYPE = "bench"

cpu_seconds = 0.0
CLAIM = f"SELECT * FROM {SCHEMA}.claim_pending_jobs(%s, %s)"
COMPLETE = f"SELECT {SCHEMA}.complete_queue_jobs(%s, %s)"


def enqueue(dsn: str, count: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        queue = Queue(conn, SCHEMA)
        for start in range(0, count, 1000):
            queue.add_queue_jobs([{"job_type": JOB_TYPE}] * min(1000, count - start))
        conn.execute("VACUUM ANALYZE notify.queue_jobs")


def bare_loop(dsn: str, count: int) -> float:
    global cpu_seconds  # noqa: PLW0603 - the last drain's client CPU time, for the report
    cpu = time.process_time()
    started = time.perf_counter()
    done = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        while done < count:
            rows = conn.execute(CLAIM, ([JOB_TYPE], 10)).fetchall()
            ids = [row[0] for row in rows]
            tokens = [row[-1] for row in rows]
            conn.execute(COMPLETE, (ids, tokens))
            done += len(rows)
    cpu_seconds = time.process_time() - cpu
    return time.perf_counter() - started


def worker_drain(
    dsn: str,
    count: int,
    handler: Callable[[ClaimedJob], None],
    concurrency: int = 1,
    batch_size: int = 10,
) -> float:
    done = 0
    worker: Worker

    def counting(job: ClaimedJob) -> None:
        nonlocal done
        handler(job)
        done += 1  # the GIL makes this safe enough for a stop signal
        if done >= count:
            worker.stop()

    global cpu_seconds  # noqa: PLW0603
    worker = Worker(
        dsn, [JOB_TYPE], counting, schema=SCHEMA, maintenance=False,
        concurrency=concurrency, batch_size=batch_size,
    )  # fmt: skip
    cpu = time.process_time()
    started = time.perf_counter()
    worker.run(install_signal_handler=False)
    cpu_seconds = time.process_time() - cpu
    return time.perf_counter() - started


def noop(job: ClaimedJob) -> None:
    return None


def io_20ms(job: ClaimedJob) -> None:
    time.sleep(0.02)


def compare_overhead(dsn: str, count: int, rounds: int) -> None:
    ratios = []
    totals = {"bare": 0.0, "worker": 0.0}
    cpu = {"bare": 0.0, "worker": 0.0}
    for number in range(rounds):
        timings: dict[str, float] = {}
        order = ("bare", "worker") if number % 2 == 0 else ("worker", "bare")
        for name in order:
            enqueue(dsn, count)
            timings[name] = (
                bare_loop(dsn, count) if name == "bare" else worker_drain(dsn, count, noop)
            )
            cpu[name] += cpu_seconds
        ratio = timings["bare"] / timings["worker"]
        ratios.append(ratio)
        for name, took in timings.items():
            totals[name] += took
        print(f"round {number + 1}: Worker drains at {ratio:.3f}x the bare loop", flush=True)
    print(
        f"median of rounds: {statistics.median(ratios):.3f}x; all rounds together: "
        f"{totals['bare'] / totals['worker']:.3f}x ({rounds} x {count} no-op jobs, batch 10); "
        f"client CPU per job: Worker {cpu['worker'] / cpu['bare']:.3f}x the bare loop's"
    )


def compare_concurrency(dsn: str, rounds: int) -> None:
    for handler, count in ((noop, 10_000), (io_20ms, 1_000)):
        results: dict[int, list[float]] = {1: [], 4: [], 16: []}
        for _ in range(rounds):
            enqueue(dsn, count)
            base = worker_drain(dsn, count, handler)
            for concurrency, ratios in results.items():
                enqueue(dsn, count)
                batch = max(10, concurrency)
                took = worker_drain(dsn, count, handler, concurrency=concurrency, batch_size=batch)
                ratios.append(base / took)
        shown = ", ".join(
            f"--concurrency {c}: {statistics.median(r):.2f}x" for c, r in results.items()
        )
        print(f"{handler.__name__} ({count} jobs): {shown}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--concurrency", action="store_true")
    args = parser.parse_args()
    with throwaway_postgres() as server:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        dsn = server.dsn(DATABASE)
        migrate(dsn, SCHEMA)
        if args.profile:
            enqueue(dsn, args.jobs)
            profile = cProfile.Profile()
            profile.runcall(worker_drain, dsn, args.jobs, noop)
            pstats.Stats(profile).sort_stats("cumulative").print_stats(30)
            return
        compare_overhead(dsn, args.jobs, args.rounds)
        if args.concurrency:
            compare_concurrency(dsn, args.rounds)


if __name__ == "__main__":
    main()
