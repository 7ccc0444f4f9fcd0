"""Queue benchmark: every figure a ratio to a plain-SQL baseline measured in the same run.

    .venv/bin/python -m bench.bench_queue            # full run (a few minutes)
    .venv/bin/python -m bench.bench_queue --quick    # smoke run
    .venv/bin/python -m bench.bench_queue --durable  # fsync on, as in production

It starts its own throwaway PostgreSQL, installs notify-sql with the migrator, and
drives the database with pgbench (from the server's bindir), so the client costs the
same for the baseline and for notify-sql and the ratios measure the database side.

BASELINE: the least a SKIP LOCKED queue can do per job, on a minimal table (bigint id,
status, priority, scheduled_for, one partial index in claim order): claim one row with
``FOR UPDATE SKIP LOCKED`` and commit, then mark it done and commit.

Measured against it, at 1, 4 and 8 clients:
* drain: claim_pending_jobs + complete_queue_job (batch 1) or complete_queue_jobs
  (batches of 10 and 100), two commits per batch;
* enqueue: add_queue_job and add_queue_jobs (100 per call), with NOTIFY and with it
  turned off (``notify_sql.enqueue_notify = off``), next to a raw single-row INSERT;
* claim latency p50 / p99 (claim one, complete it, repeat; the claim call timed from
  Python) with only the jobs being claimed vs. 1M pending + 1M finished rows.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from notify_sql.migrator import migrate
from notify_sql.throwaway import SUPERUSER, ThrowawayPostgres, find_bindir, throwaway_postgres
from notify_sql.wrappers import Queue

SCHEMA = "notify"
DATABASE = "bench"

BASELINE_TABLE = """
CREATE TABLE baseline_jobs (
  id bigserial PRIMARY KEY,
  status text NOT NULL DEFAULT 'pending',
  priority integer NOT NULL DEFAULT 10,
  scheduled_for timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX baseline_jobs_claim_idx ON baseline_jobs (priority, scheduled_for)
  WHERE status = 'pending';
"""

BASELINE_DRAIN = """
UPDATE baseline_jobs SET status = 'processing'
WHERE id = (SELECT id FROM baseline_jobs
            WHERE status = 'pending' AND scheduled_for <= now()
            ORDER BY priority, scheduled_for LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id \\gset
UPDATE baseline_jobs SET status = 'completed' WHERE id = :id;
"""

DRAIN_ONE = """
SELECT id, processing_token FROM notify.claim_pending_jobs('{bench}', 1) \\gset
SELECT notify.complete_queue_job(:id, NULL, :processing_token);
"""

DRAIN_BATCH = """
SELECT array_agg(id) AS ids, array_agg(processing_token) AS tokens
FROM notify.claim_pending_jobs('{bench}', %d) \\gset
SELECT notify.complete_queue_jobs(:ids, :tokens);
"""

# The baseline's two statements on the queue_jobs table itself (what notify-sql writes,
# without the functions around it): splits batch-1 cost into table and function layers.
# `limit_key IS NULL` matches the claim index of unkeyed jobs (migration 0008).
RAW_ON_QUEUE_JOBS = """
UPDATE notify.queue_jobs SET status = 'processing', processing_token = gen_random_uuid(),
       started_at = now(), updated_at = now()
WHERE id = (SELECT id FROM notify.queue_jobs
            WHERE status = 'pending' AND limit_key IS NULL AND scheduled_for <= now()
            ORDER BY priority, scheduled_for LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id, processing_token \\gset
UPDATE notify.queue_jobs SET status = 'completed', completed_at = now(), updated_at = now()
WHERE id = :id AND status = 'processing' AND processing_token = :processing_token;
"""

RAW_INSERT = "INSERT INTO notify.queue_jobs (job_type) VALUES ('bench');\n"
ADD_ONE = "SELECT notify.add_queue_job(NULL, 'bench', '{}'::jsonb);\n"
BULK_SIZE = 100
ADD_BULK = (
    "SELECT notify.add_queue_jobs('"
    + json.dumps([{"job_type": "bench", "metadata": {"n": n}} for n in range(BULK_SIZE)])
    + "'::jsonb);\n"
)
NOTIFY_OFF = {"PGOPTIONS": "-c notify_sql.enqueue_notify=off"}


@dataclass(frozen=True)
class Scale:
    drain_jobs: int  # jobs drained per pgbench run
    enqueue_jobs: int  # jobs enqueued per pgbench run
    latency_claims: int  # claims timed on each table
    big_rows: int  # pending rows, and again finished rows, for the latency test
    rounds: int  # every comparison is repeated; the median ratio is reported


FULL = Scale(drain_jobs=16_000, enqueue_jobs=16_000, latency_claims=4_000,
             big_rows=1_000_000, rounds=3)  # fmt: skip
QUICK = Scale(drain_jobs=2_000, enqueue_jobs=2_000, latency_claims=400,
              big_rows=50_000, rounds=1)  # fmt: skip
CLIENTS = (1, 4, 8)
BATCHES = (1, 10, 100)
ENQUEUE_CLIENTS = 4
LATENCY_CHUNK = 50  # claims per turn when alternating between the two tables


def fill_queue(conn: psycopg.Connection[Any], pending: int, finished: int = 0) -> None:
    """Replaces the queue's content: ``pending`` due jobs, ``finished`` completed ones."""
    conn.execute("TRUNCATE notify.queue_jobs")
    conn.execute(
        "INSERT INTO notify.queue_jobs (job_type, scheduled_for) "
        "SELECT 'bench', now() - interval '1 hour' + g * interval '1 microsecond' "
        "FROM generate_series(1, %s) g",
        (pending,),
    )
    if finished:
        conn.execute(
            "INSERT INTO notify.queue_jobs (job_type, status, attempts, started_at, "
            "completed_at, scheduled_for) "
            "SELECT 'bench', 'completed', 1, now() - interval '2 hours', "
            "now() - interval '2 hours', now() - interval '3 hours' "
            "FROM generate_series(1, %s)",
            (finished,),
        )
    conn.execute("VACUUM ANALYZE notify.queue_jobs")


def fill_baseline(conn: psycopg.Connection[Any], pending: int) -> None:
    conn.execute("TRUNCATE baseline_jobs")
    conn.execute(
        "INSERT INTO baseline_jobs (scheduled_for) "
        "SELECT now() - interval '1 hour' + g * interval '1 microsecond' "
        "FROM generate_series(1, %s) g",
        (pending,),
    )
    conn.execute("VACUUM ANALYZE baseline_jobs")


@dataclass
class Comparison:
    """Rates of one configuration and of the baseline runs bracketing each of them."""

    rates: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)

    def add(self, rate: float, baseline: float) -> None:
        self.rates.append(rate)
        self.ratios.append(rate / baseline)

    def cell(self) -> str:
        return f"{statistics.median(self.rates):,.0f} ({statistics.median(self.ratios):.2f}x)"


class Bench:
    def __init__(self, server: ThrowawayPostgres, scale: Scale, workdir: Path) -> None:
        self.server = server
        self.scale = scale
        self.workdir = workdir
        self.pgbench = str(find_bindir() / "pgbench")
        self.admin = psycopg.connect(server.dsn(DATABASE), autocommit=True)

    def pgbench_tps(
        self, script: str, clients: int, transactions: int, env: dict[str, str] | None = None
    ) -> float:
        path = self.workdir / "script.sql"
        path.write_text(script)
        command = [
            self.pgbench, "-n", "-M", "prepared", "-f", str(path),
            "-c", str(clients), "-j", str(clients), "-t", str(transactions),
            "-h", self.server.host, "-p", str(self.server.port), "-U", SUPERUSER, DATABASE,
        ]  # fmt: skip
        result = subprocess.run(
            command, check=False, capture_output=True, text=True, env={**os.environ, **(env or {})}
        )
        match = re.search(r"^tps = ([0-9.]+)", result.stdout, re.MULTILINE)
        failed = re.search(r"number of failed transactions: (\d+)", result.stdout)
        if result.returncode != 0 or not match or (failed and int(failed.group(1))):
            raise RuntimeError(f"pgbench failed:\n{result.stdout}\n{result.stderr}")
        return float(match.group(1))

    def baseline(self, clients: int) -> float:
        """Jobs per second of the plain-SQL claim-then-complete loop."""
        per_client = self.scale.drain_jobs // clients
        fill_baseline(self.admin, per_client * clients + 100)
        return self.pgbench_tps(BASELINE_DRAIN, clients, per_client)

    def drain(self, clients: int, batch: int) -> float:
        per_client = max(self.scale.drain_jobs // (clients * batch), 2)
        fill_queue(self.admin, per_client * clients * batch + 100)
        script = DRAIN_ONE if batch == 1 else DRAIN_BATCH % batch
        return self.pgbench_tps(script, clients, per_client) * batch

    def interleaved_latencies(self, scripts: dict[str, str], clients: int) -> dict[str, float]:
        """Runs the scripts in ONE pgbench run, picked at random per transaction, so each
        sees the same load; returns each one's mean latency in ms."""
        options = []
        for name, script in scripts.items():
            path = self.workdir / f"{name}.sql"
            path.write_text(script)
            options += ["-f", f"{path}@1"]
        per_client = self.scale.drain_jobs // clients
        fill_baseline(self.admin, per_client * clients + 100)
        fill_queue(self.admin, 2 * per_client * clients + 100)
        command = [
            self.pgbench, "-n", "-M", "prepared", *options,
            "-c", str(clients), "-j", str(clients), "-t", str(per_client),
            "-h", self.server.host, "-p", str(self.server.port), "-U", SUPERUSER, DATABASE,
        ]  # fmt: skip
        result = subprocess.run(command, check=True, capture_output=True, text=True)
        blocks = re.split(r"^SQL script \d+: ", result.stdout, flags=re.MULTILINE)[1:]
        found = {}
        for name, block in zip(scripts, blocks, strict=True):
            match = re.search(r"latency average = ([0-9.]+) ms", block)
            assert match, block
            found[name] = float(match.group(1))
        return found

    def enqueue(self, script: str, jobs_per_call: int, notify: bool) -> float:
        calls = max(self.scale.enqueue_jobs // (ENQUEUE_CLIENTS * jobs_per_call), 5)
        fill_queue(self.admin, 0)
        env = None if notify else NOTIFY_OFF
        return self.pgbench_tps(script, ENQUEUE_CLIENTS, calls, env) * jobs_per_call


def compare_drain(bench: Bench, out: Callable[[str], None]) -> dict[int, float]:
    """Each round runs the baseline, then every batch size, then the baseline again;
    each rate is divided by the mean of the two baselines around it, so load from
    elsewhere on the machine hits both sides of a ratio alike."""
    out("### Drain: claim + complete, jobs/s (ratio to the baseline, same clients)")
    out("")
    out("| clients | baseline jobs/s | batch 1 | batch 10 | batch 100 |")
    out("| ---: | ---: | ---: | ---: | ---: |")
    baselines: dict[int, float] = {}
    for clients in CLIENTS:
        results = {batch: Comparison() for batch in BATCHES}
        seen = []
        for _ in range(bench.scale.rounds):
            before = bench.baseline(clients)
            rates = {batch: bench.drain(clients, batch) for batch in BATCHES}
            after = bench.baseline(clients)
            seen += [before, after]
            for batch, rate in rates.items():
                results[batch].add(rate, (before + after) / 2)
        baselines[clients] = statistics.median(seen)
        cells = " | ".join(results[batch].cell() for batch in BATCHES)
        out(f"| {clients} | {baselines[clients]:,.0f} | {cells} |")
    return baselines


def compare_enqueue(bench: Bench, out: Callable[[str], None], drain_baseline: float) -> None:
    out("")
    out(f"### Enqueue: jobs/s, {ENQUEUE_CLIENTS} clients")
    out("")
    out("Ratios to a raw single-row INSERT run before and after each measurement, and to")
    out(f"the drain baseline at {ENQUEUE_CLIENTS} clients.")
    out("")
    out("| path | jobs/s | vs raw INSERT | vs drain baseline |")
    out("| --- | ---: | ---: | ---: |")
    paths = [
        (f"{label}, NOTIFY {'on' if notify else 'off'}", script, size, notify)
        for label, script, size in (
            ("add_queue_job", ADD_ONE, 1),
            (f"add_queue_jobs ({BULK_SIZE} per call)", ADD_BULK, BULK_SIZE),
        )
        for notify in (True, False)
    ]
    results = {name: Comparison() for name, *_ in paths}
    raws = []
    for _ in range(bench.scale.rounds):
        before = bench.enqueue(RAW_INSERT, 1, notify=False)
        rates = {name: bench.enqueue(script, size, notify) for name, script, size, notify in paths}
        after = bench.enqueue(RAW_INSERT, 1, notify=False)
        raws += [before, after]
        for name, rate in rates.items():
            results[name].add(rate, (before + after) / 2)
    raw = statistics.median(raws)
    out(f"| raw INSERT (no dedup, no NOTIFY) | {raw:,.0f} | 1.00x | {raw / drain_baseline:.2f}x |")
    for name, comparison in results.items():
        rate = statistics.median(comparison.rates)
        ratio = statistics.median(comparison.ratios)
        out(f"| {name} | {rate:,.0f} | {ratio:.2f}x | {rate / drain_baseline:.2f}x |")


def compare_claim_latency(
    server: ThrowawayPostgres, scale: Scale, out: Callable[[str], None]
) -> None:
    """Two databases, one nearly empty and one with the big backlog, claimed from in
    alternating chunks so both see the same background load."""
    out("")
    out("### Claim latency: claim_pending_jobs(batch 1) from Python, then complete")
    out("")
    tables = {
        "bench_small": ("only the jobs claimed", scale.latency_claims + 100, 0),
        "bench_big": (f"{scale.big_rows:,} pending + {scale.big_rows:,} finished",
                      scale.big_rows, scale.big_rows),
    }  # fmt: skip
    queues: dict[str, Queue] = {}
    latencies: dict[str, list[float]] = {name: [] for name in tables}
    with ExitStack() as stack:
        for name, (_, pending, finished) in tables.items():
            create_database(server, name)
            conn = stack.enter_context(psycopg.connect(server.dsn(name), autocommit=True))
            fill_queue(conn, pending, finished)
            queues[name] = Queue(conn, SCHEMA)
        for _ in range(scale.latency_claims // LATENCY_CHUNK):
            for name, queue in queues.items():
                for _ in range(LATENCY_CHUNK):
                    start = time.perf_counter()
                    [job] = queue.claim_pending_jobs(["bench"], batch_size=1)
                    latencies[name].append(time.perf_counter() - start)
                    queue.complete_queue_job(job.id, processing_token=job.processing_token)
    out("| table | p50 ms | p99 ms |")
    out("| --- | ---: | ---: |")
    for name, (label, *_) in tables.items():
        p50, p99 = (_percentile(latencies[name], f) for f in (0.5, 0.99))
        out(f"| {label} | {p50 * 1000:.3f} | {p99 * 1000:.3f} |")
    small, big = latencies["bench_small"], latencies["bench_big"]
    out("")
    out(
        f"big / small: p50 {_percentile(big, 0.5) / _percentile(small, 0.5):.2f}x, "
        f"p99 {_percentile(big, 0.99) / _percentile(small, 0.99):.2f}x"
    )


def compare_layers(bench: Bench, out: Callable[[str], None]) -> None:
    out("")
    out("### Where batch-1 time goes: ms per job, the three loops interleaved in one run")
    out("")
    out("| clients | baseline table, plain SQL | queue_jobs, plain SQL | notify-sql functions |")
    out("| ---: | ---: | ---: | ---: |")
    scripts = {"baseline": BASELINE_DRAIN, "table": RAW_ON_QUEUE_JOBS, "functions": DRAIN_ONE}
    for clients in (1, 4):
        ms = bench.interleaved_latencies(scripts, clients)
        base = ms["baseline"]
        cells = " | ".join(f"{ms[name]:.3f} ({base / ms[name]:.2f}x)" for name in scripts)
        out(f"| {clients} | {cells} |")


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def create_database(server: ThrowawayPostgres, name: str) -> None:
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    migrate(server.dsn(name), SCHEMA)


# The throwaway server runs with fsync off (its data directory is deleted anyway), which
# makes every commit CPU-bound; --durable measures with production's fsync on instead.
DURABLE = {"fsync": "on", "full_page_writes": "on"}


def run(scale: Scale, durable: bool) -> None:
    def out(line: str) -> None:
        print(line, flush=True)

    settings = DURABLE if durable else None
    with throwaway_postgres(settings) as server, tempfile.TemporaryDirectory() as workdir:
        create_database(server, DATABASE)
        with psycopg.connect(server.dsn(DATABASE), autocommit=True) as conn:
            conn.execute(BASELINE_TABLE)
        bench = Bench(server, scale, Path(workdir))
        try:
            baselines = compare_drain(bench, out)
            compare_layers(bench, out)
            compare_enqueue(bench, out, baselines[ENQUEUE_CLIENTS])
        finally:
            bench.admin.close()
        compare_claim_latency(server, scale, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--durable", action="store_true", help="fsync on (commits hit disk)")
    args = parser.parse_args()
    run(QUICK if args.quick else FULL, args.durable)


if __name__ == "__main__":
    main()
