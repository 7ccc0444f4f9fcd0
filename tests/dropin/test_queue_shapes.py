"""The queue-side behaviours the seed platform's worker relies on (issue 14, points 3
and 6), made the way its apps make them, on a `--schema public` install."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from tests.dropin.shapes import QUEUE_SHAPES
from tests.helpers.postgrest import rpc

Conn = psycopg.Connection[Any]


def add_job(conn: Conn, job_type: str = "send_notification", **more: Any) -> UUID:
    args = {"p_user_id": uuid4(), "p_job_type": job_type, "p_metadata": {}, **more}
    job_id: UUID = rpc(conn, "add_queue_job", args)[0]["add_queue_job"]
    return job_id


def claim(conn: Conn, job_type: str) -> list[dict[str, Any]]:
    return rpc(conn, "claim_pending_jobs", {"p_job_types": [job_type], "p_batch_size": 10})


def age(conn: Conn, job_id: UUID, seconds: int) -> None:
    """Makes a processing job look as if it started and last beat `seconds` ago."""
    conn.execute(
        "UPDATE public.queue_jobs SET started_at = now() - make_interval(secs => %s), "
        "updated_at = now() - make_interval(secs => %s) WHERE id = %s",
        (seconds, seconds, job_id),
    )


def run_until_drained(conn: Conn, job_type: str, attempt: Callable[[dict[str, Any]], None]) -> int:
    """Claims the one job of `job_type` and runs `attempt` on it until it is no longer
    claimable (retries made due at once); how many runs it took (at most 6)."""
    runs = 0
    while (jobs := claim(conn, job_type)) and runs < 6:
        runs += 1
        attempt(jobs[0])
        conn.execute("UPDATE public.queue_jobs SET scheduled_for = now() WHERE id = %s",
                     (jobs[0]["id"],))  # fmt: skip
    return runs


def status(conn: Conn, job_id: UUID) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT status, attempts FROM public.queue_jobs WHERE id = %s", (job_id,)
    ).fetchone()
    assert row is not None
    return tuple(row)


@pytest.mark.parametrize(
    "keys", [s.keys for s in QUEUE_SHAPES], ids=lambda k: "+".join(x[2:] for x in k)
)
def test_reset_stalled_jobs_as_the_worker_calls_it(public_db: Conn, keys: tuple[str, ...]) -> None:
    stalled = {job_type: add_job(public_db, job_type) for job_type in ("brief", "sms")}
    for job_type, job_id in stalled.items():
        claim(public_db, job_type)
        age(public_db, job_id, 600)
    values = {"p_stall_timeout": "300 seconds", "p_include_job_types": ["brief"],
              "p_exclude_job_types": ["sms"]}  # fmt: skip
    (row,) = rpc(public_db, "reset_stalled_jobs", {k: values[k] for k in keys})
    reset = 2 if keys == ("p_stall_timeout",) else 1
    assert row["reset_stalled_jobs"] == reset
    assert status(public_db, stalled["brief"])[0] == "pending"
    assert status(public_db, stalled["sms"])[0] == ("pending" if reset == 2 else "processing")


def test_heartbeat_by_update_of_updated_at_keeps_a_job(public_db: Conn) -> None:
    job_id = add_job(public_db)
    claim(public_db, "send_notification")
    age(public_db, job_id, 600)
    public_db.execute("SET ROLE service_role")
    public_db.execute("UPDATE public.queue_jobs SET updated_at = now() WHERE id = %s", (job_id,))
    public_db.execute("RESET ROLE")
    (row,) = rpc(public_db, "reset_stalled_jobs", {"p_stall_timeout": "300 seconds"})
    assert row["reset_stalled_jobs"] == 0
    assert status(public_db, job_id)[0] == "processing"


def test_add_queue_job_stores_a_correlation_id(public_db: Conn) -> None:
    job_id = add_job(public_db)
    row = public_db.execute(
        "SELECT metadata ->> 'correlationId' FROM public.queue_jobs WHERE id = %s", (job_id,)
    ).fetchone()
    assert row is not None and row[0] is not None and UUID(row[0])
    given = add_job(public_db, p_metadata={"correlationId": "mine"})
    assert public_db.execute(
        "SELECT metadata ->> 'correlationId' FROM public.queue_jobs WHERE id = %s", (given,)
    ).fetchone() == ("mine",)


def test_a_failing_job_runs_max_attempts_times_under_the_platform_rule(public_db: Conn) -> None:
    """The platform's worker retries while attempts + 1 < max_attempts, reading attempts
    on the claimed row as the number of earlier attempts."""

    def fail(job: dict[str, Any]) -> None:
        retry = job["attempts"] + 1 < job["max_attempts"]
        rpc(public_db, "fail_queue_job",
            {"p_job_id": job["id"], "p_error_message": "boom", "p_retry": retry,
             "p_processing_token": job["processing_token"]})  # fmt: skip

    job_id = add_job(public_db, "always_fails")
    assert run_until_drained(public_db, "always_fails", fail) == 3
    assert status(public_db, job_id)[0] == "failed"


def test_a_job_whose_worker_keeps_crashing_ends_failed(public_db: Conn) -> None:
    def crash(job: dict[str, Any]) -> None:
        age(public_db, job["id"], 600)  # the worker died mid-job
        rpc(public_db, "reset_stalled_jobs", {"p_stall_timeout": "300 seconds"})

    job_id = add_job(public_db, "crashes")
    assert run_until_drained(public_db, "crashes", crash) == 3
    assert status(public_db, job_id)[0] == "failed"


def test_the_worker_writes_processed_at(public_db: Conn) -> None:
    job_id = add_job(public_db)
    claim(public_db, "send_notification")
    public_db.execute("SET ROLE service_role")
    public_db.execute("UPDATE public.queue_jobs SET processed_at = now() WHERE id = %s", (job_id,))
    public_db.execute("RESET ROLE")
    assert public_db.execute(
        "SELECT processed_at IS NOT NULL FROM public.queue_jobs WHERE id = %s", (job_id,)
    ).fetchone() == (True,)
