"""The queue as the seed platform's workers use it (issue 14, queue side).

Named-argument SQL calls as service_role (PostgREST turns `rpc(name, {p_arg: value})`
into exactly that, each JSON value converted to the declared type; the JSON strings
arrive as untyped literals here too). What is checked: reset_stalled_jobs with a text
timeout and job-type scoping, heartbeats by a plain UPDATE of updated_at, attempts
counting the earlier attempts, correlationId on enqueue, processed_at.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[Any]


def claim(service_db: Conn, job_type: str, batch: int = 1) -> list[tuple[Any, ...]]:
    return service_db.execute(
        "SELECT id, attempts, max_attempts, processing_token "
        "FROM notify.claim_pending_jobs(p_job_types => %s, p_batch_size => %s)",
        ([job_type], batch),
    ).fetchall()


def add(service_db: Conn, job_type: str, **extra: Any) -> UUID:
    names = ", ".join(f"{key} => %({key})s" for key in extra)
    row = service_db.execute(
        "SELECT notify.add_queue_job(p_user_id => NULL, p_job_type => %(job_type)s, "
        f"p_metadata => %(metadata)s{', ' + names if names else ''})",
        {"job_type": job_type, "metadata": Jsonb({}), **extra},
    ).fetchone()
    assert row is not None
    return UUID(str(row[0]))


def stall(db: Conn, minutes: int = 10) -> None:
    """Every processing job's worker went silent `minutes` ago."""
    db.execute(
        "UPDATE notify.queue_jobs SET started_at = now() - make_interval(mins => %s), "
        "updated_at = now() - make_interval(mins => %s) WHERE status = 'processing'",
        (minutes, minutes),
    )


def reset(service_db: Conn, **arguments: Any) -> int:
    names = ", ".join(f"{key} => %({key})s" for key in arguments)
    row = service_db.execute(f"SELECT notify.reset_stalled_jobs({names})", arguments).fetchone()
    assert row is not None
    return int(row[0])


def status(db: Conn, job_id: UUID) -> tuple[str, int]:
    row = db.execute(
        "SELECT status, attempts FROM notify.queue_jobs WHERE id = %s", (job_id,)
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_reset_stalled_jobs_takes_the_platforms_arguments(db: Conn, service_db: Conn) -> None:
    mail, sms, brief = (add(service_db, t) for t in ("mail", "sms", "brief"))
    for job_type in ("mail", "sms", "brief"):
        claim(service_db, job_type)
    stall(db)
    # The timeout as the platform sends it: the text '300 seconds'.
    assert reset(service_db, p_stall_timeout="300 seconds", p_include_job_types=["mail", "sms"],
                 p_exclude_job_types=["sms"]) == 1  # fmt: skip
    assert status(db, mail)[0] == "pending"
    assert status(db, sms)[0] == status(db, brief)[0] == "processing"
    assert reset(service_db, p_stall_timeout="300 seconds", p_exclude_job_types=["brief"]) == 1
    assert status(db, sms)[0] == "pending"
    assert reset(service_db, p_stall_timeout="300 seconds") == 1
    assert status(db, brief)[0] == "pending"
    assert reset(service_db) == 0  # every default
    # The batch bound is still there, by name and by position.
    assert service_db.execute("SELECT notify.reset_stalled_jobs('1 minute', 5)").fetchone() == (0,)


@pytest.mark.parametrize(
    ("arguments", "parameter"),
    [
        ({"p_stall_timeout": "-5 seconds"}, "p_stall_timeout"),
        ({"p_include_job_types": ["a", None]}, "p_include_job_types"),
        ({"p_exclude_job_types": ["x"] * 1001}, "p_exclude_job_types"),
    ],
)
def test_reset_stalled_jobs_refuses_bad_arguments(
    service_db: Conn, arguments: dict[str, Any], parameter: str
) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=f"^{parameter}"):
        reset(service_db, **arguments)


def test_a_plain_update_of_updated_at_is_a_heartbeat(db: Conn, service_db: Conn) -> None:
    job = add(service_db, "t")
    [(_, _, _, token)] = claim(service_db, "t")
    stall(db)
    # The platform's worker: UPDATE queue_jobs SET updated_at = now() WHERE id = ...
    service_db.execute("UPDATE notify.queue_jobs SET updated_at = now() WHERE id = %s", (job,))
    assert reset(service_db, p_stall_timeout="300 seconds") == 0
    db.execute("UPDATE notify.queue_jobs SET updated_at = now() - interval '10 minutes'")
    assert service_db.execute(
        "SELECT notify.heartbeat_queue_job(%s, %s)", (job, token)
    ).fetchone() == (True,)
    assert reset(service_db, p_stall_timeout="300 seconds") == 0
    db.execute("UPDATE notify.queue_jobs SET updated_at = now() - interval '10 minutes'")
    assert reset(service_db, p_stall_timeout="300 seconds") == 1


def test_a_heartbeat_by_update_is_a_hot_update(db: Conn, service_db: Conn) -> None:
    """updated_at is in no index, so the platform's heartbeat adds no index entries."""
    job = add(service_db, "t")
    claim(service_db, "t")
    with db.transaction():
        for _ in range(20):
            db.execute("UPDATE notify.queue_jobs SET updated_at = now() WHERE id = %s", (job,))
        row = db.execute(
            "SELECT pg_stat_get_xact_tuples_updated(c), pg_stat_get_xact_tuples_hot_updated(c) "
            "FROM CAST('notify.queue_jobs' AS regclass) AS c"
        ).fetchone()
    assert row == (20, 20)


def test_a_job_that_always_fails_runs_max_attempts_times_under_the_platforms_rule(
    service_db: Conn, db: Conn
) -> None:
    job = add(service_db, "t")
    runs = []
    while claimed := claim(service_db, "t"):
        [(job_id, attempts, max_attempts, token)] = claimed
        runs.append(attempts)
        # The platform's worker: retry while attempts + 1 < max_attempts.
        service_db.execute(
            "SELECT notify.fail_queue_job(p_job_id => %s, p_error_message => 'boom', "
            "p_retry => %s, p_processing_token => %s)",
            (job_id, attempts + 1 < max_attempts, token),
        )
        db.execute("UPDATE notify.queue_jobs SET scheduled_for = now() WHERE status = 'pending'")
    assert runs == [0, 1, 2]
    assert status(db, job) == ("failed", 3)


def test_always_retrying_still_ends_after_max_attempts_runs(service_db: Conn, db: Conn) -> None:
    job = add(service_db, "t")
    runs = 0
    while claimed := claim(service_db, "t"):
        [(job_id, _, _, token)] = claimed
        runs += 1
        service_db.execute("SELECT notify.fail_queue_job(%s, 'boom', true, %s)", (job_id, token))
        db.execute("UPDATE notify.queue_jobs SET scheduled_for = now() WHERE status = 'pending'")
    assert runs == 3
    assert status(db, job) == ("failed", 3)


def test_a_job_whose_worker_keeps_crashing_ends_failed_after_max_attempts_runs(
    service_db: Conn, db: Conn
) -> None:
    job = add(service_db, "t")
    runs = []
    while claimed := claim(service_db, "t"):
        runs.append(claimed[0][1])
        stall(db)  # the worker died mid-job
        assert reset(service_db, p_stall_timeout="300 seconds") == 1
    assert runs == [0, 1, 2]
    assert status(db, job) == ("failed", 3)


def test_release_gives_the_job_back_without_counting_an_attempt(service_db: Conn, db: Conn) -> None:
    job = add(service_db, "t")
    [(_, _, _, token)] = claim(service_db, "t")
    service_db.execute("SELECT notify.release_queue_jobs(%s, %s)", ([job], [token]))
    assert status(db, job) == ("pending", 0)
    assert claim(service_db, "t")[0][1] == 0


def test_enqueue_adds_a_correlation_id_unless_given(service_db: Conn, db: Conn) -> None:
    fresh = add(service_db, "t")
    kept = service_db.execute(
        'SELECT notify.add_queue_job(NULL, \'t\', \'{"correlationId": "abc", "n": 1}\')'
    ).fetchone()
    [bulk_fresh, bulk_kept] = service_db.execute(
        'SELECT unnest(notify.add_queue_jobs(\'[{"job_type": "t"}, '
        '{"job_type": "t", "metadata": {"correlationId": "xyz"}}]\'))'
    ).fetchall()
    metadata = dict(db.execute("SELECT id, metadata FROM notify.queue_jobs").fetchall())
    assert UUID(metadata[fresh]["correlationId"])
    assert UUID(metadata[bulk_fresh[0]]["correlationId"])
    assert metadata[fresh]["correlationId"] != metadata[bulk_fresh[0]]["correlationId"]
    assert kept is not None and metadata[kept[0]] == {"correlationId": "abc", "n": 1}
    assert metadata[bulk_kept[0]] == {"correlationId": "xyz"}


def test_processed_at_exists_and_the_worker_may_write_it(service_db: Conn) -> None:
    job = add(service_db, "t")
    service_db.execute("UPDATE notify.queue_jobs SET processed_at = now() WHERE id = %s", (job,))
    row = service_db.execute(
        "SELECT processed_at IS NOT NULL FROM notify.queue_jobs WHERE id = %s", (job,)
    ).fetchone()
    assert row == (True,)
