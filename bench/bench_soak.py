"""Soak: steady enqueue and drain for minutes on end; does the queue stay fast and small?

One producer keeps a backlog of due jobs topped up (bulk enqueue with add_queue_jobs),
four workers drain it (claim_pending_jobs batches, one complete_queue_job per job), and
a pruner deletes finished jobs with prune_queue_jobs the way an operator would
schedule it (every few seconds, keeping a short retention). Once a minute the monitor
records throughput, mean claim latency, backlog, heap / index sizes and the dead-tuple
and vacuum counters of pg_stat_user_tables.

``--hold-snapshot`` adds the classic cause of queue bloat: a REPEATABLE READ
transaction that holds its snapshot (and so the xmin horizon) open for
``--hold-minutes`` in the middle of the run.

    python -m bench.bench_soak --server-setting autovacuum_naptime=10s   # 10 min, clean
    python -m bench.bench_soak --server-setting autovacuum_naptime=10s --hold-snapshot
    python -m bench.bench_soak --minutes 1 --sample-seconds 10 --warmup-seconds 5  # smoke

Without ``--dsn`` it runs on a throwaway local PostgreSQL (see notify_sql.throwaway);
``autovacuum_naptime=10s`` is the server setting BENCHMARKS.md recommends for a busy
queue (per-table settings cannot shorten the autovacuum launcher's cycle).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from notify_sql.migrator import migrate
from notify_sql.throwaway import throwaway_postgres

SCHEMA = "notify"
JOB_TYPE = "soak"
ENQUEUE_BATCH = 100
CLAIM_BATCH = 10
PRUNE_BATCH = 5000

CLAIM = f"SELECT id, processing_token FROM {SCHEMA}.claim_pending_jobs(%s, %s)"
COMPLETE = f"SELECT {SCHEMA}.complete_queue_job(%s, NULL, %s)"
ENQUEUE = f"SELECT {SCHEMA}.add_queue_jobs(%s)"
PRUNE = f"SELECT {SCHEMA}.prune_queue_jobs(%s::interval, %s)"
SAMPLE = f"""
SELECT pg_relation_size(c.oid) AS heap_bytes,
       pg_indexes_size(c.oid) AS index_bytes,
       pg_total_relation_size(c.oid) AS total_bytes,
       s.n_live_tup, s.n_dead_tup, s.n_tup_upd, s.n_tup_hot_upd,
       s.autovacuum_count, s.vacuum_count,
       (SELECT count(*) FROM {SCHEMA}.queue_jobs WHERE status = 'pending') AS pending
FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.oid = '{SCHEMA}.queue_jobs'::regclass
"""


@dataclass
class Shared:
    """Counters the processes share (multiprocessing Values) and the stop flag."""

    enqueued: Synchronized[int]
    completed: Synchronized[int]
    claim_calls: Synchronized[int]
    claim_seconds: Synchronized[float]
    pruned: Synchronized[int]
    stop: Event


@dataclass(frozen=True)
class Settings:
    dsn: str
    backlog: int
    retention_seconds: int
    prune_every: float
    hold_start: float  # seconds after the processes start; negative: no held snapshot
    hold_seconds: float


@dataclass(frozen=True)
class Minute:
    minute: float
    completed: int
    enqueued: int
    pruned: int
    mean_claim_ms: float
    pending: int
    heap_bytes: int
    index_bytes: int
    total_bytes: int
    n_live_tup: int
    n_dead_tup: int
    hot_update_pct: float
    autovacuum_count: int
    snapshot_held: bool


@contextmanager
def _service_connection(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=0) as conn:
        conn.execute("SET ROLE service_role")
        yield conn


def _add(counter: Synchronized[Any], amount: float) -> None:
    with counter.get_lock():
        counter.value += amount


def produce(settings: Settings, shared: Shared) -> None:
    jobs = Jsonb([{"job_type": JOB_TYPE, "metadata": {"n": n}} for n in range(ENQUEUE_BATCH)])
    with _service_connection(settings.dsn) as conn:
        while not shared.stop.is_set():
            if shared.enqueued.value - shared.completed.value >= settings.backlog:
                time.sleep(0.005)
                continue
            conn.execute(ENQUEUE, (jobs,))
            _add(shared.enqueued, ENQUEUE_BATCH)


def work(settings: Settings, shared: Shared) -> None:
    with _service_connection(settings.dsn) as conn:
        while not shared.stop.is_set():
            started = time.perf_counter()
            claimed = conn.execute(CLAIM, ([JOB_TYPE], CLAIM_BATCH)).fetchall()
            _add(shared.claim_seconds, time.perf_counter() - started)
            _add(shared.claim_calls, 1)
            if not claimed:
                time.sleep(0.01)
                continue
            done = sum(bool(conn.execute(COMPLETE, row).fetchone()[0]) for row in claimed)  # type: ignore[index]
            _add(shared.completed, done)


def prune(settings: Settings, shared: Shared) -> None:
    retention = f"{settings.retention_seconds} seconds"
    with _service_connection(settings.dsn) as conn:
        while not shared.stop.wait(settings.prune_every):
            while True:
                deleted = conn.execute(PRUNE, (retention, PRUNE_BATCH)).fetchone()[0]  # type: ignore[index]
                _add(shared.pruned, deleted)
                if deleted < PRUNE_BATCH:
                    break


def hold_snapshot(settings: Settings, shared: Shared, held: Event) -> None:
    """A reporting query left open: REPEATABLE READ keeps its first snapshot, so the
    xmin horizon stays put and vacuum can remove nothing newer for its duration."""
    if shared.stop.wait(settings.hold_start):
        return
    with psycopg.connect(settings.dsn) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        conn.execute(f"SELECT count(*) FROM {SCHEMA}.queue_jobs")
        held.set()
        shared.stop.wait(settings.hold_seconds)
        conn.rollback()
        held.clear()


def _sample(
    conn: psycopg.Connection[Any], shared: Shared, previous: dict[str, float], elapsed: float,
    held: Event,
) -> Minute:  # fmt: skip
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    stats = cur.execute(SAMPLE).fetchone()
    assert stats is not None
    now = {
        "completed": shared.completed.value,
        "enqueued": shared.enqueued.value,
        "pruned": shared.pruned.value,
        "claim_calls": shared.claim_calls.value,
        "claim_seconds": shared.claim_seconds.value,
        "upd": stats["n_tup_upd"],
        "hot": stats["n_tup_hot_upd"],
    }
    delta = {name: now[name] - previous.get(name, 0) for name in now}
    previous.update(now)
    return Minute(
        minute=round(elapsed / 60, 2),
        completed=int(delta["completed"]),
        enqueued=int(delta["enqueued"]),
        pruned=int(delta["pruned"]),
        mean_claim_ms=round(1000 * delta["claim_seconds"] / max(delta["claim_calls"], 1), 2),
        pending=stats["pending"],
        heap_bytes=stats["heap_bytes"],
        index_bytes=stats["index_bytes"],
        total_bytes=stats["total_bytes"],
        n_live_tup=stats["n_live_tup"],
        n_dead_tup=stats["n_dead_tup"],
        hot_update_pct=round(100 * delta["hot"] / max(delta["upd"], 1), 1),
        autovacuum_count=stats["autovacuum_count"],
        snapshot_held=held.is_set(),
    )


def soak(
    settings: Settings, workers: int, minutes: float, sample_seconds: float, warmup_seconds: float
) -> list[Minute]:
    context = multiprocessing.get_context("spawn")
    shared = Shared(
        enqueued=context.Value("q", 0),
        completed=context.Value("q", 0),
        claim_calls=context.Value("q", 0),
        claim_seconds=context.Value("d", 0.0),
        pruned=context.Value("q", 0),
        stop=context.Event(),
    )
    held = context.Event()
    processes = [context.Process(target=produce, args=(settings, shared))]
    processes += [context.Process(target=work, args=(settings, shared)) for _ in range(workers)]
    if settings.retention_seconds > 0:
        processes.append(context.Process(target=prune, args=(settings, shared)))
    if settings.hold_start >= 0:
        processes.append(context.Process(target=hold_snapshot, args=(settings, shared, held)))
    samples: list[Minute] = []
    with psycopg.connect(settings.dsn, autocommit=True) as monitor:
        for process in processes:
            process.start()
        previous: dict[str, float] = {}
        try:
            # The warm-up lets the table reach its steady state (the first prune happens
            # only once jobs are older than the retention); its row is shown apart.
            time.sleep(warmup_seconds)
            warmup = _sample(monitor, shared, previous, 0.0, held)
            print(_row(warmup).replace("| 0 |", "| warm-up |", 1), flush=True)
            started = time.monotonic()
            for n in range(1, round(minutes * 60 / sample_seconds) + 1):
                time.sleep(max(0.0, started + n * sample_seconds - time.monotonic()))
                sample = _sample(monitor, shared, previous, time.monotonic() - started, held)
                samples.append(sample)
                print(_row(sample), flush=True)
        finally:
            shared.stop.set()
            for process in processes:
                process.join(timeout=30)
                if process.is_alive():
                    process.kill()
    if any(process.exitcode != 0 for process in processes):
        raise SystemExit(f"a soak process failed: exit codes {[p.exitcode for p in processes]}")
    return samples


HEADER = (
    "| min | jobs done | claim ms | backlog | heap MB | index MB | total MB | live tup "
    "| dead tup | HOT % | autovac | snapshot held |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def _mb(size: int) -> str:
    return f"{size / 2**20:.1f}"


def _row(s: Minute) -> str:
    return (
        f"| {s.minute:g} | {s.completed} | {s.mean_claim_ms} | {s.pending} | {_mb(s.heap_bytes)} "
        f"| {_mb(s.index_bytes)} | {_mb(s.total_bytes)} | {s.n_live_tup} | {s.n_dead_tup} "
        f"| {s.hot_update_pct} | {s.autovacuum_count} | {'yes' if s.snapshot_held else ''} |"
    )


def summary(samples: list[Minute]) -> str:
    first, last = samples[0], samples[-1]
    peak = max(s.total_bytes for s in samples)
    ratio = last.completed / max(first.completed, 1)
    return (
        f"total jobs done: {sum(s.completed for s in samples)}; "
        f"last / first interval throughput: {ratio:.3f} "
        f"({'within' if abs(ratio - 1) <= 0.10 else 'OUTSIDE'} the 10% target); "
        f"total size first / peak / last: {_mb(first.total_bytes)} / {_mb(peak)} / "
        f"{_mb(last.total_bytes)} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", help="run against this database (default: a throwaway server)")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--sample-seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--backlog", type=int, default=2000, help="due jobs kept queued")
    parser.add_argument(
        "--retention-seconds", type=int, default=30, help="prune age (0: no pruning)"
    )
    parser.add_argument("--warmup-seconds", type=float, default=60.0)
    parser.add_argument("--prune-every", type=float, default=5.0, help="seconds between prunes")
    parser.add_argument("--hold-snapshot", action="store_true")
    parser.add_argument("--hold-minutes", type=float, default=2.0)
    parser.add_argument(
        "--server-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the throwaway server (e.g. autovacuum_naptime=10s); repeatable",
    )
    parser.add_argument("--json", help="also write the samples to this file")
    args = parser.parse_args()

    def run(dsn: str) -> list[Minute]:
        migrate(dsn, SCHEMA)
        hold_seconds = args.hold_minutes * 60
        settings = Settings(
            dsn=dsn,
            backlog=args.backlog,
            retention_seconds=args.retention_seconds,
            prune_every=args.prune_every,
            hold_start=args.warmup_seconds + (args.minutes * 60 - hold_seconds) / 2
            if args.hold_snapshot
            else -1.0,
            hold_seconds=hold_seconds,
        )
        print(HEADER, flush=True)
        return soak(settings, args.workers, args.minutes, args.sample_seconds, args.warmup_seconds)

    if args.dsn:
        samples = run(args.dsn)
    else:
        server_settings = dict(setting.split("=", 1) for setting in args.server_setting)
        with throwaway_postgres(server_settings) as server:
            samples = run(server.dsn())
    print(summary(samples))
    if args.json:
        with open(args.json, "w") as out:
            json.dump([asdict(s) for s in samples], out, indent=1)


if __name__ == "__main__":
    main()
