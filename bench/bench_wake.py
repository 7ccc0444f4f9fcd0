"""What the worker's idle-path question costs: ``next_limited_start()`` against the
empty claim that precedes it.

    .venv/bin/python -m bench.bench_wake --rounds 9

After a claim that did not fill its batch, the worker sends one more statement,
``SELECT extract(epoch FROM next_limited_start() - clock_timestamp())``, before it
waits (notify_sql/worker.py, ``Worker._pause``). Its cost grows with the number of
limit keys held back (next_limited_start reads every row of queue_limits), so it is
measured with 0, 100 and 10,000 keys whose buckets are empty, each round timing the
statement and an empty ``claim_pending_jobs`` (no job due: what an idle worker's claim
costs) back to back on one connection, in alternating order; the ratio is statement
over claim in the same round, the median and spread of rounds are printed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import psycopg
from psycopg import sql

from notify_sql.migrator import migrate
from notify_sql.throwaway import throwaway_postgres

SCHEMA = "notify"
Conn = psycopg.Connection[Any]
CLAIM = b"SELECT * FROM notify.claim_pending_jobs('{bench}'::text[], 10)"
ASK = b"SELECT extract(epoch FROM notify.next_limited_start() - clock_timestamp())::float8"


def timed(conn: Conn, query: bytes, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        conn.execute(query).fetchall()
    return time.perf_counter() - started


def held_back_keys(conn: Conn, keys: int) -> None:
    """``keys`` limit keys at a rate far too low to refill within the run, buckets empty."""
    conn.execute("TRUNCATE notify.queue_limits")
    conn.execute(
        "SELECT notify.set_queue_limit('held:' || k, 0.001, NULL, 1) FROM generate_series(1, %s) k",
        (keys,),
    )
    conn.execute("UPDATE notify.queue_limits SET tokens = 0, refilled_at = now()")
    conn.execute("VACUUM ANALYZE notify.queue_limits")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    with throwaway_postgres() as server:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier("bench")))
        dsn = server.dsn("bench")
        migrate(dsn, SCHEMA)
        with psycopg.connect(dsn, autocommit=True) as conn:
            for keys in (0, 100, 10_000):
                held_back_keys(conn, keys)
                timed(conn, CLAIM, 20)  # prepared (psycopg prepares from the 5th call)
                timed(conn, ASK, 20)
                ratios = []
                for number in range(args.rounds):
                    pair = (ASK, CLAIM) if number % 2 else (CLAIM, ASK)
                    took = {query: timed(conn, query, args.calls) for query in pair}
                    ratios.append(took[ASK] / took[CLAIM])
                median = statistics.median(ratios)
                print(
                    f"{keys:>6} held-back keys: next_limited_start {median:.2f}x an empty "
                    f"claim (spread {min(ratios):.2f} to {max(ratios):.2f}, "
                    f"{args.rounds} rounds of {args.calls} calls each)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
