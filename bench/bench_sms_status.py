"""Twilio status-callback throughput: update_sms_status_atomic of this tree against a
baseline version of the function, installed side by side in one database and measured
in alternating pgbench rounds, so only the ratio matters.

    python -m bench.bench_sms_status [--baseline-rev 70742a7] [--clients 1 4]

The baseline is the function file at a git revision (main's by default), installed as
`notify.update_sms_status_atomic_baseline` on the same tables. Each transaction applies
one callback (a random message, a random Twilio status, looked up by id) the way the
seed platform's webhook sends it: with p_mapped_status NULL for both versions, and,
for this tree only, the platform's SMS-vocabulary p_mapped_status (which the baseline
refuses). Reported: median tx/s over the rounds and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
from pathlib import Path

import psycopg

from bench.bench_analytics import pgbench_tps
from notify_sql.migrator import migrate
from notify_sql.throwaway import throwaway_postgres

ROOT = Path(__file__).resolve().parents[1]
FUNCTION_FILE = "sql/functions/deliveries/update_sms_status_atomic.sql"
MESSAGES = 20_000
ROUNDS = 5
SETUP_SQL = """
INSERT INTO notify.notification_deliveries (recipient_user_id, channel)
SELECT gen_random_uuid(), 'sms' FROM generate_series(1, {n});
INSERT INTO notify.sms_messages (user_id, phone_number, message_content, notification_delivery_id)
SELECT recipient_user_id, '+15550100', 'hi', id FROM notify.notification_deliveries;
CREATE TABLE bench_messages AS
SELECT row_number() OVER () AS n, id FROM notify.sms_messages;
CREATE UNIQUE INDEX ON bench_messages (n);
"""
# Twilio statuses drawn per callback, and what the platform's webhook maps each to.
STATUSES = "ARRAY['queued', 'sending', 'sent', 'delivered', 'undelivered', 'read']"
PLATFORM = "ARRAY['queued', 'sending', 'sent', 'delivered', 'undelivered', 'read']"
# (the platform passes queued, sending, sent, delivered, undelivered and read unchanged)


def script(function: str, mapped: str) -> str:
    return (
        f"\\set n random(1, {MESSAGES})\n\\set s random(1, 6)\n"
        f"SELECT notify.{function}((SELECT id FROM bench_messages WHERE n = :n), NULL, "
        f"({STATUSES})[:s], {mapped});\n"
    )


def install_baseline(conn: psycopg.Connection[object], rev: str) -> None:
    text = subprocess.run(
        ["git", "show", f"{rev}:{FUNCTION_FILE}"], cwd=ROOT, check=True,
        capture_output=True, text=True,
    ).stdout  # fmt: skip
    body = "\n".join(
        line for line in text.splitlines() if not line.startswith(("GRANT", "COMMENT"))
    )
    body = body.replace(
        "@schema@.update_sms_status_atomic(", "@schema@.update_sms_status_atomic_baseline("
    )
    conn.execute(body.replace("@schema@", "notify"))


def run(rev: str, clients: list[int]) -> None:
    with throwaway_postgres(settings={"fsync": "off", "synchronous_commit": "off"}) as server:
        dsn = server.dsn("postgres")
        migrate(dsn, "notify")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(SETUP_SQL.format(n=MESSAGES))
            install_baseline(conn, rev)
            conn.execute("VACUUM ANALYZE")
        variants = {
            f"baseline ({rev}), mapped NULL": script("update_sms_status_atomic_baseline", "NULL"),
            "this tree, mapped NULL": script("update_sms_status_atomic", "NULL"),
            "this tree, platform SMS vocabulary": script(
                "update_sms_status_atomic", f"({PLATFORM})[:s]"
            ),
        }
        print("| variant | clients | tx/s (median) | ratio to baseline |")
        print("| --- | ---: | ---: | ---: |")
        for count in clients:
            rates: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(ROUNDS):
                for name, text in variants.items():
                    rates[name].append(pgbench_tps(server, text, count))
            base = next(iter(rates.values()))
            for name, values in rates.items():
                ratio = statistics.median(v / b for v, b in zip(values, base, strict=True))
                print(f"| {name} | {count} | {statistics.median(values):,.0f} | {ratio:.2f} |",
                      flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-rev", default="70742a7")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    run(args.baseline_rev, args.clients)


if __name__ == "__main__":
    main()
