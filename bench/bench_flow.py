"""Flow-control and enqueue benchmark (issue 16): ratios to baselines measured in the same run.

    .venv/bin/python -m bench.bench_flow            # full run (about ten minutes)
    .venv/bin/python -m bench.bench_flow --quick    # smoke run
    .venv/bin/python -m bench.bench_flow --base 70742a7   # the "today" install to compare with
    .venv/bin/python -m bench.bench_flow --part throttled --rounds 5 --seconds 10
    .venv/bin/python -m bench.bench_flow --part enqueue --rounds 9   # one part, more rounds

One throwaway PostgreSQL, pgbench from the server's bindir (``-M prepared``, 4 clients),
so client costs are the same on both sides of every ratio. Each measurement is run
between two runs of its baseline and divided by their mean, in several rounds; the
median ratio is reported.

1. Claim with no limits, against today: two databases on the server, one installed
   from the sql/ tree of ``--base`` (git archive), one from this tree. Drain loop:
   claim_pending_jobs (batch 1 and 10), then complete_queue_jobs, two commits.
2. Claim with limited keys: the same loop over jobs spread across 1, 100 and 10,000
   keys, each key limited (a rate high enough never to hold a job back, so the cost
   measured is the machinery's), as a ratio to unkeyed jobs in the same database; at
   two backlog sizes, to show how the cost grows with keys and backlog.
3. Beside throttled keys: unkeyed jobs drained while 1, 100 or 10,000 keys have due
   jobs held back by their rate (the cost of passing them over), as a ratio to a
   queue without keyed jobs.
4. Enqueue, against two baselines each. Single calls: the seed platform's real
   add_queue_job re-expressed against our table (SEED_ADD_QUEUE_JOB: a text
   queue_job_id built per call, INSERT ... ON CONFLICT on the live dedup key DO NOTHING
   RETURNING id, the live job read when the insert yielded), the target's baseline; and
   a bare INSERT ... RETURNING in PL/pgSQL (BARE_INSERT), a stricter reference. Bulk
   (1,000 jobs per call): graphile-worker's own add_jobs, installed from npm into the
   same server at bench time and called as its addJobs() calls it (GRAPHILE_ADD_JOBS);
   without npm or the network, that row is skipped with a message. The second, stricter
   bulk reference is a bare INSERT ... SELECT FROM jsonb_to_recordset (BARE_BULK).
   Our rows run with and without a limit key (and unkeyed with an input as long as the
   keyed one), and with an idle worker present (so the NOTIFY is sent). Each table is
   measured three ways: jobs/s with 4 pgbench clients; jobs/s of one pgbench client
   (the issue's own measure: one connection); and jobs per CPU second of the one
   backend of a single connection (/proc/<pid>/schedstat), which the load of a shared
   machine moves much less.
Jobs/s of the drains are counted from the rows completed during a timed pgbench run
(``-T``), since a claim may come back short.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from notify_sql.migrator import migrate
from notify_sql.throwaway import SUPERUSER, ThrowawayPostgres, find_bindir, throwaway_postgres

SCHEMA = "notify"
CLIENTS = 4
REPO = Path(__file__).resolve().parent.parent

# The seed platform's add_queue_job (buildos-platform, packages/shared-types/src/functions/
# add_queue_job.sql), its logic written again for our queue_jobs table: a queue_job_id of
# job type, '_' and a random uuid; the insert arbitrated by the live dedup-key index
# (a speculative insertion on every call); when it yields, the live job's id, oldest
# first; two tries, then an error. The seed casts the type and status to its enums; our
# columns are text, so those casts are left out.
SEED_ADD_QUEUE_JOB = """
CREATE SCHEMA bench;
CREATE FUNCTION bench.seed_add_queue_job(p_user_id uuid, p_job_type text, p_metadata jsonb,
  p_priority integer DEFAULT 10, p_scheduled_for timestamptz DEFAULT now(),
  p_dedup_key text DEFAULT NULL) RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
  v_id uuid;
  v_try integer := 0;
BEGIN
  LOOP
    v_try := v_try + 1;
    v_id := NULL;
    INSERT INTO notify.queue_jobs (user_id, job_type, metadata, priority, scheduled_for,
                                   dedup_key, status, queue_job_id)
    VALUES (p_user_id, p_job_type, p_metadata, p_priority, p_scheduled_for, p_dedup_key,
            'pending', p_job_type || '_' || gen_random_uuid()::text)
    ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL AND status IN ('pending', 'processing')
    DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NOT NULL THEN
      RETURN v_id;
    END IF;
    IF p_dedup_key IS NOT NULL THEN
      SELECT j.id INTO v_id FROM notify.queue_jobs j
      WHERE j.dedup_key = p_dedup_key AND j.status IN ('pending', 'processing')
      ORDER BY j.created_at LIMIT 1;
      IF v_id IS NOT NULL THEN
        RETURN v_id;
      END IF;
    END IF;
    IF v_try >= 2 THEN
      RAISE EXCEPTION 'no job created or found for dedup key %', p_dedup_key;
    END IF;
  END LOOP;
END $$;
"""

# The stricter single-call reference: nothing but an INSERT ... RETURNING in PL/pgSQL.
BARE_INSERT = """
CREATE FUNCTION bench.bare_add_queue_job(p_user_id uuid, p_job_type text, p_metadata jsonb,
  p_priority integer DEFAULT 10, p_scheduled_for timestamptz DEFAULT now(),
  p_dedup_key text DEFAULT NULL) RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE v_id uuid;
BEGIN
  INSERT INTO notify.queue_jobs (user_id, job_type, metadata, priority, scheduled_for, dedup_key)
  VALUES (p_user_id, p_job_type, p_metadata, p_priority, p_scheduled_for, p_dedup_key)
  RETURNING id INTO v_id;
  RETURN v_id;
END $$;
"""

# The stricter bulk reference (graphile-worker's approach stripped to its core): one
# INSERT of the whole batch read with jsonb_to_recordset, ids returned as an array, one
# NOTIFY per call.
BARE_BULK = """
CREATE FUNCTION bench.bulk_add_jobs(p_jobs jsonb) RETURNS uuid[] LANGUAGE plpgsql AS $$
DECLARE v_ids uuid[];
BEGIN
  WITH inserted AS (
    INSERT INTO notify.queue_jobs (job_type, metadata, priority, scheduled_for, max_attempts)
    SELECT s.job_type, coalesce(s.metadata, '{}'), coalesce(s.priority, 10),
           coalesce(s.scheduled_for, now()), coalesce(s.max_attempts, 3)
    FROM jsonb_to_recordset(p_jobs) AS s(job_type text, metadata jsonb, priority integer,
                                         scheduled_for timestamptz, max_attempts integer)
    RETURNING id)
  SELECT array_agg(id) INTO v_ids FROM inserted;
  PERFORM pg_notify('jobs:insert', '');
  RETURN v_ids;
END $$;
"""

# graphile-worker from npm, its schema installed into the bench database by its own CLI.
GRAPHILE_VERSION = "0.18.0"
# The statement graphile-worker's addJobs() sends (src/helpers.ts, makeAddJobs), with
# the batch inlined: the specs parsed into its job_spec type, every job row returned.
GRAPHILE_ADD_JOBS = (
    "SELECT * FROM graphile_worker.add_jobs(ARRAY(SELECT json_populate_recordset("
    "NULL::graphile_worker.job_spec, '{specs}'::json)), false);\n"
)

DRAIN = """
SELECT coalesce(array_agg(id), '{}') AS ids, coalesce(array_agg(processing_token), '{}') AS tokens
FROM notify.claim_pending_jobs('{bench}', %d) \\gset
SELECT notify.complete_queue_jobs(:ids, :tokens);
"""

BULK = 1000
SEED = "seed's add_queue_job (target baseline)"
BARE = "bare INSERT ... RETURNING (stricter reference)"
ENQUEUE = {
    SEED: "SELECT bench.seed_add_queue_job(NULL, 'bench', '{}'::jsonb);\n",
    BARE: "SELECT bench.bare_add_queue_job(NULL, 'bench', '{}'::jsonb);\n",
    "add_queue_job": "SELECT notify.add_queue_job(NULL, 'bench', '{}'::jsonb);\n",
    "add_queue_job with p_limit_key": (
        "SELECT notify.add_queue_job(NULL, 'bench', '{}'::jsonb, p_limit_key => 'tenant:42');\n"
    ),
}
BULK_JOBS = [{"job_type": "bench", "metadata": {"n": n}} for n in range(BULK)]
BULK_KEYED = [{**job, "limit_key": f"tenant:{n % 10}"} for n, job in enumerate(BULK_JOBS)]
# Unkeyed, but as many bytes per job as BULK_KEYED (the key's text moved into metadata):
# tells the limit key's own cost from the cost of parsing and storing a longer input.
BULK_PADDED = [
    {"job_type": "bench", "metadata": {"n": n, "k": f"tenant:{n % 10}"}} for n in range(BULK)
]
GRAPHILE_SPECS = [{"identifier": "bench", "payload": {"n": n}} for n in range(BULK)]
GRAPHILE = f"graphile-worker {GRAPHILE_VERSION} add_jobs (target baseline)"
BARE_GRAPHILE = "bare INSERT ... SELECT FROM jsonb_to_recordset (stricter reference)"
ENQUEUE_BULK = {
    GRAPHILE: GRAPHILE_ADD_JOBS.format(specs=json.dumps(GRAPHILE_SPECS)),
    BARE_GRAPHILE: f"SELECT bench.bulk_add_jobs('{json.dumps(BULK_JOBS)}');\n",
    "add_queue_jobs": f"SELECT notify.add_queue_jobs('{json.dumps(BULK_JOBS)}');\n",
    "add_queue_jobs with limit_key": f"SELECT notify.add_queue_jobs('{json.dumps(BULK_KEYED)}');\n",
    "add_queue_jobs, unkeyed, input as long as keyed": (
        f"SELECT notify.add_queue_jobs('{json.dumps(BULK_PADDED)}');\n"
    ),
}


@dataclass(frozen=True)
class Scale:
    seconds: int  # per timed drain run
    rounds: int
    backlogs: tuple[int, ...]
    single_calls: int  # add_queue_job calls per client per run
    bulk_calls: int  # add_queue_jobs calls per client per run


FULL = Scale(seconds=3, rounds=3, backlogs=(50_000, 200_000), single_calls=3000, bulk_calls=8)
QUICK = Scale(seconds=1, rounds=1, backlogs=(20_000,), single_calls=300, bulk_calls=2)
KEYS = (1, 100, 10_000)


class Bench:
    def __init__(self, server: ThrowawayPostgres, scale: Scale, workdir: Path) -> None:
        self.server, self.scale, self.workdir = server, scale, workdir
        self.pgbench_path = str(find_bindir() / "pgbench")

    def run_pgbench(self, database: str, script: str, *limit: str, clients: int = CLIENTS) -> str:
        path = self.workdir / "script.sql"
        path.write_text(script)
        command = [
            self.pgbench_path, "-n", "-M", "prepared", "-f", str(path), "-c", str(clients),
            "-j", str(clients), *limit,
            "-h", self.server.host, "-p", str(self.server.port), "-U", SUPERUSER, database,
        ]  # fmt: skip
        result = subprocess.run(command, check=False, capture_output=True, text=True)
        failed = re.search(r"number of failed transactions: (\d+)", result.stdout)
        if result.returncode != 0 or (failed and int(failed.group(1))):
            raise RuntimeError(f"pgbench failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def drain_rate(self, database: str, batch: int) -> float:
        """Jobs completed per second during one timed run."""
        with psycopg.connect(self.server.dsn(database), autocommit=True) as conn:
            before = _count(
                conn, "SELECT count(*) FROM notify.queue_jobs WHERE status = 'completed'"
            )
            start = time.perf_counter()
            self.run_pgbench(database, DRAIN % batch, "-T", str(self.scale.seconds))
            elapsed = time.perf_counter() - start
            after = _count(
                conn, "SELECT count(*) FROM notify.queue_jobs WHERE status = 'completed'"
            )
        return (after - before) / elapsed

    def enqueue_rate(
        self, database: str, script: str, calls: int, per_call: int, clients: int = CLIENTS
    ) -> float:
        output = self.run_pgbench(database, script, "-t", str(calls), clients=clients)
        match = re.search(r"^tps = ([0-9.]+)", output, re.MULTILINE)
        assert match, output
        return float(match.group(1)) * per_call


def _count(conn: psycopg.Connection[Any], query: str) -> int:
    row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def fill(dsn: str, jobs: int, keys: int = 0, limited: bool = True) -> None:
    """Replaces the queue: `jobs` due jobs, spread over `keys` limit keys (0: unkeyed),
    every key limited far above what the drain reaches when `limited`."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE notify.queue_jobs")
        if _has_limits(conn):
            conn.execute("TRUNCATE notify.queue_limits")
        key = "CASE WHEN %(keys)s > 0 THEN 'key:' || (g %% %(keys)s) END" if keys else "NULL"
        conn.execute(
            "INSERT INTO notify.queue_jobs (job_type, scheduled_for"
            + (", limit_key" if keys else "")
            + ") SELECT 'bench', now() - interval '1 hour' + g * interval '1 microsecond'"
            + (f", {key}" if keys else "")
            + " FROM generate_series(1, %(jobs)s) g",
            {"jobs": jobs, "keys": keys},
        )
        if keys and limited:
            conn.execute(
                "SELECT notify.set_queue_limit('key:' || k, 1000000, NULL, 1000000) "
                "FROM generate_series(0, %s - 1) k",
                (keys,),
            )
        conn.execute("VACUUM ANALYZE notify.queue_jobs")


def _has_limits(conn: psycopg.Connection[Any]) -> bool:
    return conn.execute("SELECT to_regclass('notify.queue_limits') IS NOT NULL").fetchone() == (
        True,
    )


def median_ratio(
    rounds: int, measure: Callable[[], float], baseline: Callable[[], float]
) -> tuple[float, float, float]:
    """(median rate, median baseline, median ratio), each rate over the mean of the two
    baseline runs around it."""
    rates, bases, ratios = [], [], []
    for _ in range(rounds):
        before = baseline()
        rate = measure()
        after = baseline()
        rates.append(rate)
        bases += [before, after]
        ratios.append(rate / ((before + after) / 2))
    return statistics.median(rates), statistics.median(bases), statistics.median(ratios)


def compare_today(bench: Bench, out: Callable[[str], None]) -> None:
    out(f"### Claim with no limits: this tree vs `--base`, jobs/s, {CLIENTS} clients")
    out("")
    out("| batch | base jobs/s | this tree jobs/s | ratio |")
    out("| ---: | ---: | ---: | ---: |")
    backlog = bench.scale.backlogs[0]
    for batch in (1, 10):

        def run(database: str, batch: int = batch) -> float:
            fill(bench.server.dsn(database), backlog)
            return bench.drain_rate(database, batch)

        rate, base, ratio = median_ratio(
            bench.scale.rounds, lambda: run("flow_now"), lambda: run("flow_base")
        )
        out(f"| {batch} | {base:,.0f} | {rate:,.0f} | {ratio:.2f}x |")


def compare_keys(bench: Bench, out: Callable[[str], None]) -> None:
    out("")
    out(
        "### Claim with limited keys: jobs/s as a ratio to unkeyed jobs, "
        f"batch 10, {CLIENTS} clients"
    )
    out("")
    out("Every key limited at 1,000,000/s (never holding a job back): the cost of the machinery.")
    out("")
    out("| backlog | unkeyed jobs/s | " + " | ".join(f"{k:,} keys" for k in KEYS) + " |")
    out("| ---: | ---: | " + " | ".join("---:" for _ in KEYS) + " |")
    dsn = bench.server.dsn("flow_now")
    for backlog in bench.scale.backlogs:
        cells = []
        base_rates = []
        for keys in KEYS:

            def keyed(keys: int = keys, backlog: int = backlog) -> float:
                fill(dsn, backlog, keys)
                return bench.drain_rate("flow_now", 10)

            def unkeyed(backlog: int = backlog) -> float:
                fill(dsn, backlog)
                return bench.drain_rate("flow_now", 10)

            rate, base, ratio = median_ratio(bench.scale.rounds, keyed, unkeyed)
            base_rates.append(base)
            cells.append(f"{rate:,.0f} ({ratio:.2f}x)")
        out(f"| {backlog:,} | {statistics.median(base_rates):,.0f} | " + " | ".join(cells) + " |")


def compare_throttled(bench: Bench, out: Callable[[str], None]) -> None:
    out("")
    out(
        "### Beside throttled keys: unkeyed jobs/s while K keys are held back by their "
        "rate, as a ratio to no keyed jobs (batch 10)"
    )
    out("")
    out("| throttled keys | ratio |")
    out("| ---: | ---: |")
    dsn = bench.server.dsn("flow_now")
    backlog = bench.scale.backlogs[0]
    for keys in (1, 100, 10_000):

        def beside(keys: int = keys) -> float:
            fill(dsn, backlog)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(
                    "INSERT INTO notify.queue_jobs (job_type, limit_key, scheduled_for) "
                    "SELECT 'bench', 'held:' || k, now() - interval '2 hours' "
                    "FROM generate_series(1, %s) k, generate_series(1, 3)",
                    (keys,),
                )
                conn.execute(  # one token each, refilled once in ~11 days
                    "SELECT notify.set_queue_limit('held:' || k, 0.000001, NULL, 0) "
                    "FROM generate_series(1, %s) k",
                    (keys,),
                )
                conn.execute("UPDATE notify.queue_limits SET tokens = 0")
                conn.execute("VACUUM ANALYZE notify.queue_jobs")
            return bench.drain_rate("flow_now", 10)

        def alone() -> float:
            fill(dsn, backlog)
            return bench.drain_rate("flow_now", 10)

        _, _, ratio = median_ratio(bench.scale.rounds, beside, alone)
        out(f"| {keys:,} | {ratio:.2f}x |")


@contextmanager
def idle_worker(dsn: str) -> Iterator[None]:
    """A worker whose last claim came back empty (so enqueue NOTIFYs), listening."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute('LISTEN "notify.queue_jobs"')
        conn.execute("SELECT * FROM notify.claim_pending_jobs('{nothing}', 1)")
        yield


def bracketed(
    rounds: int, baselines: dict[str, Callable[[], float]], rows: dict[str, Callable[[], float]]
) -> tuple[dict[str, list[float]], dict[tuple[str, str], list[float]]]:
    """Rates of every baseline and row, and each row's ratios to each baseline: in every
    round the baselines run before and after each row, and a row is divided by the mean
    of the two runs around it (the machine's load moves from one second to the next)."""
    rates: dict[str, list[float]] = {name: [] for name in [*baselines, *rows]}
    ratios: dict[tuple[str, str], list[float]] = {}

    def measure_baselines() -> dict[str, float]:
        now = {name: run() for name, run in baselines.items()}
        for name, rate in now.items():
            rates[name].append(rate)
        return now

    for _ in range(rounds):
        before = measure_baselines()
        for name, run in rows.items():
            rate = run()
            after = measure_baselines()
            rates[name].append(rate)
            for base in baselines:
                ratio = rate / ((before[base] + after[base]) / 2)
                ratios.setdefault((name, base), []).append(ratio)
            before = after
    return rates, ratios


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"


def compare_enqueue(bench: Bench, out: Callable[[str], None]) -> None:
    dsn = bench.server.dsn("flow_now")
    scale = bench.scale
    graphile = install_graphile(bench.server, "flow_now", bench.workdir, out)

    def runner(calls: int, per_call: int, mode: str) -> Callable[[str], Callable[[], float]]:
        def make(script: str) -> Callable[[], float]:
            def run() -> float:
                fill(dsn, 0)
                if graphile:
                    with psycopg.connect(dsn, autocommit=True) as conn:
                        conn.execute("TRUNCATE graphile_worker._private_jobs")
                if mode == "cpu":
                    return backend_cpu_rate(dsn, script, calls, per_call)
                if mode == "one":  # the same number of jobs as the 4 clients send
                    return bench.enqueue_rate("flow_now", script, calls * CLIENTS, per_call, 1)
                return bench.enqueue_rate("flow_now", script, calls, per_call)

            return run

        return make

    def notifying(mode: str) -> Callable[[], float]:
        def run() -> float:
            with idle_worker(dsn):
                return runner(scale.single_calls, 1, mode)(ENQUEUE["add_queue_job"])()

        return run

    bulk_scripts = dict(ENQUEUE_BULK)
    bulk_bases = [GRAPHILE, BARE_GRAPHILE]
    if not graphile:
        del bulk_scripts[GRAPHILE]
        bulk_bases.remove(GRAPHILE)
    tables = (
        ("single calls", [SEED, BARE], ENQUEUE, scale.single_calls, 1),
        (f"{BULK:,} jobs per call", bulk_bases, bulk_scripts, scale.bulk_calls, BULK),
    )
    for (title, base_names, scripts, calls, per_call), mode in itertools.product(
        tables, ("clients", "one", "cpu")
    ):
        make = runner(calls, per_call, mode)
        baselines = {name: make(scripts[name]) for name in base_names}
        rows = {name: make(script) for name, script in scripts.items() if name not in base_names}
        if per_call == 1:
            rows["add_queue_job, a worker idle (NOTIFY sent)"] = notifying(mode)
        rates, ratios = bracketed(scale.rounds, baselines, rows)
        out("")
        if mode == "cpu":
            out(f"### Enqueue, {title}, jobs per backend CPU second, {scale.rounds} rounds")
            out("")
            out("One connection, one transaction per call; the backend's own CPU time")
            out("(/proc/<pid>/schedstat), so what the server does per job, less moved by the load.")
        elif mode == "one":
            out(f"### Enqueue, {title}, jobs/s, one connection, {scale.rounds} rounds")
            out("")
            out(f"pgbench with one client sending {calls * CLIENTS * per_call:,} jobs, one")
            out("transaction per call: what one application connection gets.")
        else:
            out(f"### Enqueue, {title}, jobs/s, {CLIENTS} clients, {scale.rounds} rounds")
        out("")
        out("Ratio: median over the rounds (lowest-highest), each run over the mean of the")
        out("baseline runs just before and after it.")
        out("")
        unit = "jobs/CPU s" if mode == "cpu" else "jobs/s"
        out(f"| path | {unit} | " + " | ".join(f"vs {name}" for name in base_names) + " |")
        out("| --- | ---: | " + " | ".join("---:" for _ in base_names) + " |")
        median = {name: statistics.median(values) for name, values in rates.items()}
        for name in base_names:
            cells = [f"{median[name] / median[other]:.2f}x" for other in base_names]
            out(f"| {name} | {median[name]:,.0f} | " + " | ".join(cells) + " |")
        for name in rows:
            cells = [spread(ratios[name, base]) for base in base_names]
            out(f"| {name} | {median[name]:,.0f} | " + " | ".join(cells) + " |")


def backend_cpu_rate(dsn: str, script: str, calls: int, per_call: int) -> float:
    """Jobs per second of CPU time of the one backend that runs `calls` calls, each in
    its own transaction (after one call to plan it)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        stat = Path(f"/proc/{row[0]}/schedstat")  # on-CPU time in ns, first field
        conn.execute(script, prepare=True)
        start = int(stat.read_text().split()[0])
        for _ in range(calls):
            conn.execute(script, prepare=True)
        return calls * per_call / ((int(stat.read_text().split()[0]) - start) / 1e9)


def install_graphile(
    server: ThrowawayPostgres, database: str, workdir: Path, out: Callable[[str], None]
) -> bool:
    """Installs graphile-worker from npm into `workdir` and its schema into `database`
    (its own CLI, --schema-only); False, after saying why, when that is impossible."""
    npm = shutil.which("npm")
    if npm is None:
        out("(npm not found: graphile-worker's add_jobs is not measured)")
        return False
    prefix = workdir / "graphile"
    url = f"postgres://{SUPERUSER}@localhost/{database}?host={server.host}&port={server.port}"
    steps = (
        [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
         f"graphile-worker@{GRAPHILE_VERSION}"],
        [str(prefix / "node_modules" / ".bin" / "graphile-worker"), "-c", url, "--schema-only"],
    )  # fmt: skip
    for command in steps:
        try:
            subprocess.run(command, check=True, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.SubprocessError) as error:
            detail = getattr(error, "stderr", "") or error
            out(f"(graphile-worker could not be installed, its add_jobs is not measured: {detail})")
            return False
    return True


def install_base(server: ThrowawayPostgres, base: str, workdir: Path) -> None:
    """Installs the sql/ tree of commit `base` into database flow_base."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", base, "sql"], check=True, capture_output=True
    ).stdout
    root = workdir / "base"
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(root, filter="data")
    create_database(server, "flow_base", root / "sql")


def create_database(server: ThrowawayPostgres, name: str, root: Path | None = None) -> None:
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    migrate(server.dsn(name), SCHEMA, root=root)


def run(scale: Scale, base: str, only: list[str] | None = None) -> None:
    def out(line: str) -> None:
        print(line, flush=True)

    with throwaway_postgres() as server, tempfile.TemporaryDirectory() as workdir:
        create_database(server, "flow_now")
        install_base(server, base, Path(workdir))
        with psycopg.connect(server.dsn("flow_now"), autocommit=True) as conn:
            for baseline in (SEED_ADD_QUEUE_JOB, BARE_INSERT, BARE_BULK):
                conn.execute(baseline)
        bench = Bench(server, scale, Path(workdir))
        out(f"Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, base {base}, "
            f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        out("")
        parts = {"today": compare_today, "keys": compare_keys,
                 "throttled": compare_throttled, "enqueue": compare_enqueue}  # fmt: skip
        for name in only or list(parts):
            parts[name](bench, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--base", default="70742a7", help="commit whose install is 'today'")
    parser.add_argument("--rounds", type=int, help="rounds per measurement (default: 3, quick: 1)")
    parser.add_argument("--seconds", type=int, help="seconds per timed drain (default: 3)")
    parser.add_argument(
        "--part", action="append", choices=["today", "keys", "throttled", "enqueue"],
        help="run only this part (repeatable)",
    )  # fmt: skip
    args = parser.parse_args()
    scale = QUICK if args.quick else FULL
    if args.rounds:
        scale = dataclasses.replace(scale, rounds=args.rounds)
    if args.seconds:
        scale = dataclasses.replace(scale, seconds=args.seconds)
    run(scale, args.base, args.part)


if __name__ == "__main__":
    main()
