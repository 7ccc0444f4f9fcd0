"""Property test of the job state machine: random operation sequences against a model.

Hypothesis drives enqueues (with and without dedup keys), claims, completions and
failures with current and stale tokens, heartbeats, stalls and cancellations. After every
step the database must agree with a small Python model of the contract: who may finish
a job (only the current token), where a failure goes (retry with backoff until
max_attempts), what a stall does, that finished jobs never change again, and that at
most one live job holds a dedup key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

import psycopg
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from notify_sql.wrappers import Queue

Conn = psycopg.Connection[Any]
LIVE = ("pending", "processing")
FINISHED = ("completed", "failed", "cancelled")
MAX_ATTEMPTS = 3


@dataclass
class ModelJob:
    dedup_key: str | None
    status: str = "pending"
    due: bool = True
    attempts: int = 0
    token: UUID | None = None


def run_queue_machine(db: Conn, service_db: Conn) -> None:
    queue = Queue(service_db)

    class QueueMachine(RuleBasedStateMachine):
        leases = Bundle("leases")  # every (job id, token) ever handed out, stale ones too

        def __init__(self) -> None:
            super().__init__()
            self.jobs: dict[UUID, ModelJob] = {}

        @initialize()
        def empty_queue(self) -> None:
            db.execute("TRUNCATE notify.queue_jobs")

        def live_holder(self, key: str) -> UUID | None:
            return next(
                (i for i, j in self.jobs.items() if j.dedup_key == key and j.status in LIVE),
                None,
            )

        @rule(key=st.sampled_from([None, "a", "b"]))
        def add(self, key: str | None) -> None:
            holder = self.live_holder(key) if key else None
            job_id = queue.add_queue_job(None, "t", {}, dedup_key=key)
            if holder is not None:
                assert job_id == holder
            else:
                assert job_id is not None and job_id not in self.jobs
                self.jobs[job_id] = ModelJob(key)

        @precondition(lambda self: self.jobs)
        @rule(target=leases, batch=st.integers(1, 3))
        def claim(self, batch: int) -> object:
            due = [i for i, j in self.jobs.items() if j.status == "pending" and j.due]
            claimed = queue.claim_pending_jobs(["t"], batch_size=batch)
            assert len(claimed) == min(batch, len(due))
            for job in claimed:
                assert job.id is not None
                model = self.jobs[job.id]
                assert model.status == "pending" and model.due
                model.status, model.token = "processing", job.processing_token
                assert job.attempts == model.attempts  # earlier attempts only
            return multiple(*[(job.id, job.processing_token) for job in claimed])

        def holds(self, lease: tuple[UUID, UUID]) -> bool:
            job = self.jobs[lease[0]]
            return job.status == "processing" and job.token == lease[1]

        @rule(lease=leases)
        def complete(self, lease: tuple[UUID, UUID]) -> None:
            expected = self.holds(lease)
            assert queue.complete_queue_job(lease[0], processing_token=lease[1]) == expected
            if expected:
                self.jobs[lease[0]].status = "completed"

        @rule(lease=leases, retry=st.booleans())
        def fail(self, lease: tuple[UUID, UUID], retry: bool) -> None:
            expected = self.holds(lease)
            assert (
                queue.fail_queue_job(lease[0], "boom", processing_token=lease[1], retry=retry)
                == expected
            )
            if expected:
                job = self.jobs[lease[0]]
                job.attempts += 1
                if retry and job.attempts < MAX_ATTEMPTS:
                    job.status, job.due, job.token = "pending", False, None
                    # The backoff itself is tested elsewhere; here the retry must stay
                    # not due however slowly the steps run.
                    db.execute(
                        "UPDATE notify.queue_jobs SET scheduled_for = now() + interval '1 day' "
                        "WHERE id = %s",
                        (lease[0],),
                    )
                else:
                    job.status = "failed"

        @rule(lease=leases)
        def heartbeat(self, lease: tuple[UUID, UUID]) -> None:
            assert queue.heartbeat_queue_job(*lease) == self.holds(lease)

        @precondition(lambda self: any(not j.due for j in self.jobs.values()))
        @rule()
        def time_passes(self) -> None:
            """Every retry delay elapses (scheduled times moved into the past)."""
            for job in self.jobs.values():
                job.due = True
            self.due_in_creation_order(every_pending=True)

        def due_in_creation_order(self, every_pending: bool = False) -> None:
            """Gives due jobs distinct past schedules in creation order: jobs re-queued in
            one statement share now(), and a claim breaking that tie at random would make
            the run (and Hypothesis' replays) nondeterministic."""
            db.execute(
                "UPDATE notify.queue_jobs SET scheduled_for = created_at - interval '1 day' "
                "WHERE status = 'pending' AND (%s OR scheduled_for <= now())",
                (every_pending,),
            )

        @precondition(lambda self: any(j.status == "processing" for j in self.jobs.values()))
        @rule()
        def workers_stall(self) -> None:
            db.execute(
                "UPDATE notify.queue_jobs SET started_at = now() - interval '1 hour', "
                "updated_at = now() - interval '1 hour', heartbeat_at = NULL "
                "WHERE status = 'processing'"
            )
            stalled = [j for j in self.jobs.values() if j.status == "processing"]
            assert queue.reset_stalled_jobs(stall_timeout=timedelta(minutes=5)) == len(stalled)
            for job in stalled:
                job.token = None
                job.attempts += 1
                job.status = "pending" if job.attempts < MAX_ATTEMPTS else "failed"
            self.due_in_creation_order()

        @precondition(lambda self: self.jobs)
        @rule(data=st.data(), allow_processing=st.booleans())
        def cancel(self, data: st.DataObject, allow_processing: bool) -> None:
            job_id = data.draw(st.sampled_from(list(self.jobs)))
            job = self.jobs[job_id]
            expected = job.status == "pending" or (allow_processing and job.status == "processing")
            assert (
                queue.cancel_job_with_reason(job_id, "test", allow_processing=allow_processing)
                == expected
            )
            if expected:
                job.status = "cancelled"

        @invariant()
        def database_matches_model(self) -> None:
            rows = db.execute(
                "SELECT id, status, attempts, processing_token FROM notify.queue_jobs"
            ).fetchall()
            assert len(rows) == len(self.jobs)
            for job_id, status, attempts, token in rows:
                model = self.jobs[job_id]
                assert (status, attempts) == (model.status, model.attempts)
                assert 0 <= attempts <= MAX_ATTEMPTS
                if status == "processing":
                    assert token == model.token is not None
                if status == "pending":
                    assert token is None

        @invariant()
        def one_live_job_per_key(self) -> None:
            rows = db.execute(
                "SELECT dedup_key, count(*) FROM notify.queue_jobs "
                "WHERE dedup_key IS NOT NULL AND status IN ('pending', 'processing') GROUP BY 1"
            ).fetchall()
            assert all(count == 1 for _, count in rows)

    run_state_machine_as_test(
        QueueMachine,
        settings=settings(
            max_examples=60,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )


def test_job_state_machine_matches_the_model(db: Conn, service_db: Conn) -> None:
    run_queue_machine(db, service_db)
