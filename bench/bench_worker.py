"""Worker overhead: the ``Worker`` class and ``notify-sql worker`` against a bare loop.

    .venv/bin/python -m bench.bench_worker --rounds 21     # 10,000 no-op jobs per drain
    .venv/bin/python -m bench.bench_worker --profile       # cProfile of one Worker drain
    .venv/bin/python -m bench.bench_worker --concurrency --rounds 3   # the --concurrency table
    .venv/bin/python -m bench.bench_worker --rounds 21 --command-from DIR   # A/B: + DIR's command

BASELINE: the least a Python worker can do with notify-sql: on one autocommit
connection, ``SELECT * FROM notify.claim_pending_jobs(types, 10)``, then one
``complete_queue_jobs(ids, tokens)`` for the batch, until the queue is empty.

Against it, in every round and in a rotating order, each on 10,000 freshly enqueued
no-op jobs: the ``Worker`` class at its defaults (batch 10, LISTEN connection, heartbeat
thread, upkeep election), timed from ``run()`` to its return; and ``notify-sql worker``
at its defaults (``--concurrency 1``), one process kept running through the whole
benchmark on its own job type, timed from the enqueue's commit (which wakes it) to its
10,000th handler call. Each round reports the bare loop's time over the contender's;
the summary gives the median, the spread and the ratio of all rounds' totals, the client
CPU per job (``time.process_time``; the command's from its first to its last job) and
the load average the run saw. ``--command-from DIR`` adds a fourth contender, the
command run from another checkout (for instance ``git archive`` of the main branch
unpacked in DIR), on a job type of its own: an A/B of a change to the command.

``--concurrency`` measures instead the ``Worker`` with ``concurrency`` 1, 4, 16 (batch
``max(10, concurrency)``, as the command sets it) with a no-op handler and a 20 ms
sleeping handler (I/O stand-in), each as a ratio to the ``Worker`` class at batch 10 with
the same handler, measured in the same round (rounds rotate the order).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql

from notify_sql.migrator import migrate
from notify_sql.throwaway import throwaway_postgres
from notify_sql.worker import ClaimedJob, Worker
from notify_sql.wrappers import Queue

SCHEMA = "notify"
DATABASE = "bench"
JOB_TYPE = "bench"
ROOT = Path(__file__).resolve().parents[1]

cpu_seconds = 0.0
CLAIM = f"SELECT * FROM {SCHEMA}.claim_pending_jobs(%s, %s)"
COMPLETE = f"SELECT {SCHEMA}.complete_queue_jobs(%s, %s)"


def enqueue(dsn: str, count: int, job_type: str = JOB_TYPE) -> float:
    """Vacuums away the last drain's dead rows, then adds ``count`` jobs in one
    transaction, so a worker already running sees all of them at once (it is woken by
    the NOTIFY at commit). Returns the time of the commit (``time.monotonic``)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE notify.queue_jobs")
        queue = Queue(conn, SCHEMA)
        with conn.transaction():
            for start in range(0, count, 1000):
                queue.add_queue_jobs([{"job_type": job_type}] * min(1000, count - start))
        return time.monotonic()


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
        dsn, [JOB_TYPE], counting, schema=SCHEMA, concurrency=concurrency, batch_size=batch_size,
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


class Command:
    """``notify-sql worker`` at its defaults (``--concurrency 1``, batch 10, LISTEN, upkeep
    election on) running as a separate process for the whole benchmark, on its own job
    type: what an operator runs, timed in its steady state. See
    ``worker_command_handler`` for how the process reports a drain's end."""

    def __init__(
        self, dsn: str, count: int, scratch: Path, root: Path = ROOT, name: str = "command"
    ) -> None:
        self.dsn = dsn
        self.count = count
        self.job_type = f"bench-{name}"
        self.result = scratch / f"{name}.result"
        self.log = scratch / f"{name}.log"
        self.reported = 0
        environment = {
            **os.environ, "BENCH_WORKER_JOBS": str(count), "BENCH_WORKER_RESULT": str(self.result),
        }  # fmt: skip
        command = [
            sys.executable, "-m", "notify_sql", "worker", "bench.worker_command_handler:noop",
            "--job-type", self.job_type, "--dsn", dsn, "--schema", SCHEMA,
        ]  # fmt: skip
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                command, cwd=root, env=environment, stdout=subprocess.DEVNULL, stderr=log
            )
        self._until(lambda: "worker started" in self.log.read_text())

    def _until(self, condition: Callable[[], bool]) -> None:
        # Polled 20 times a second: the drain itself is timed by the worker process.
        while not condition():
            if self.process.poll() is not None:
                raise RuntimeError(f"notify-sql worker exited, see {self.log}")
            time.sleep(0.05)

    def drain(self) -> float:
        """Enqueues ``count`` jobs of its type and waits for the process to report the
        last of them: commit to the last job's handler call (wall), first to last job
        (client CPU)."""
        global cpu_seconds  # noqa: PLW0603
        committed = enqueue(self.dsn, self.count, self.job_type)
        lines: list[str] = []

        def reported() -> bool:
            lines[:] = self.result.read_text().splitlines() if self.result.exists() else []
            return len(lines) > self.reported

        self._until(reported)
        self.reported = len(lines)
        finished, cpu_first, cpu_last = (float(value) for value in lines[-1].split())
        cpu_seconds = cpu_last - cpu_first
        return finished - committed

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        if self.process.wait(60) != 0:
            raise RuntimeError(f"notify-sql worker failed to stop cleanly, see {self.log}")


def compare_overhead(dsn: str, count: int, rounds: int, command_from: Path | None) -> None:
    """Rounds rotate the order of the drains; every ratio is the bare loop's time over
    the contender's in the same round."""
    contenders = ("bare", "class", "command", *(("command-B",) if command_from else ()))
    ratios: dict[str, list[float]] = {name: [] for name in contenders[1:]}
    totals = dict.fromkeys(contenders, 0.0)
    cpu = dict.fromkeys(contenders, 0.0)
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as scratch:
        commands = {"command": Command(dsn, count, Path(scratch))}
        if command_from:
            commands["command-B"] = Command(dsn, count, Path(scratch), command_from, "command-B")
        for number in range(rounds):
            timings: dict[str, float] = {}
            shift = number % len(contenders)
            for name in contenders[shift:] + contenders[:shift]:
                if name in commands:
                    timings[name] = commands[name].drain()
                else:
                    enqueue(dsn, count)
                    if name == "bare":
                        timings[name] = bare_loop(dsn, count)
                    else:
                        timings[name] = worker_drain(dsn, count, noop)
                totals[name] += timings[name]
                cpu[name] += cpu_seconds
            loads.append(os.getloadavg()[0])
            for name, values in ratios.items():
                values.append(timings["bare"] / timings[name])
            shown = ", ".join(f"{name} {values[-1]:.3f}x" for name, values in ratios.items())
            print(f"round {number + 1}: {shown} the bare loop", flush=True)
        for command in commands.values():
            command.stop()
    print(f"{rounds} rounds x {count} no-op jobs, batch 10, ratios to the bare loop:")
    for name, values in ratios.items():
        print(
            f"  {name:8} median {statistics.median(values):.3f}x, "
            f"spread {min(values):.3f}x to {max(values):.3f}x, "
            f"all rounds together {totals['bare'] / totals[name]:.3f}x, "
            f"client CPU per job {cpu[name] / cpu['bare']:.3f}x the bare loop's"
        )
    print(
        f"  load average (1 min) during the run: {min(loads):.1f} to {max(loads):.1f}, "
        f"median {statistics.median(loads):.1f}"
    )


def compare_concurrency(dsn: str, rounds: int) -> None:
    for handler, count in ((noop, 10_000), (io_20ms, 1_000)):
        results: dict[int, list[float]] = {1: [], 4: [], 16: []}
        variants = (0, *results)  # 0: the Worker class at batch 10, the baseline
        for number in range(rounds):
            took: dict[int, float] = {}
            shift = number % len(variants)
            for concurrency in variants[shift:] + variants[:shift]:
                enqueue(dsn, count)
                took[concurrency] = worker_drain(
                    dsn, count, handler, concurrency=max(1, concurrency),
                    batch_size=max(10, concurrency),
                )  # fmt: skip
            for concurrency, ratios in results.items():
                ratios.append(took[0] / took[concurrency])
        shown = ", ".join(
            f"--concurrency {c}: {statistics.median(r):.2f}x ({min(r):.2f} to {max(r):.2f})"
            for c, r in results.items()
        )
        print(f"{handler.__name__} ({count} jobs): {shown}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--concurrency", action="store_true")
    parser.add_argument("--command-from", type=Path, metavar="DIR")
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
        if args.concurrency:
            compare_concurrency(dsn, args.rounds)
        else:
            compare_overhead(dsn, args.jobs, args.rounds, args.command_from)


if __name__ == "__main__":
    main()
