"""Property test of the claim under flow control: random operations against a model.

Hypothesis drives enqueues under three limit keys and none, limits set, changed and
removed (token buckets whose rate is too slow to refill during the test, so a bucket
is exactly its tokens; concurrency caps), pauses and their ends, claims of random
batch sizes, and completions. After every claim the database's choice must agree with
the model:

* no key gets more than its allowance (tokens, cap minus running, nothing if paused);
* within a key, jobs go in order (the key's earliest pending jobs);
* the batch is never short while some key (or an unkeyed job) could still start one
  (no head-of-line blocking);
* fair share: two groups (keys, and the unkeyed jobs as one group) never differ by two
  or more unless the smaller one ran out of jobs or allowance.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    multiple,
    rule,
    run_state_machine_as_test,
)
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[Any]
KEYS = ["a", "b", "c"]
SLOW = Decimal("0.000001")  # tokens per second: no refill within the test
BIG = 10**6


@dataclass
class Limit:
    tokens: int | None = None  # None: no rate
    cap: int | None = None
    paused: bool = False


@dataclass
class Model:
    pending: dict[str | None, list[UUID]] = field(default_factory=dict)
    running: Counter[str | None] = field(default_factory=Counter)
    limits: dict[str, Limit] = field(default_factory=dict)

    def allowance(self, key: str | None) -> int:
        limit = self.limits.get(key) if key is not None else None
        if limit is None:
            return BIG
        if limit.paused:
            return 0
        allowed = BIG if limit.tokens is None else limit.tokens
        if limit.cap is not None:
            allowed = min(allowed, limit.cap - self.running[key])
        return max(allowed, 0)

    def startable(self, key: str | None) -> int:
        return min(len(self.pending.get(key, [])), self.allowance(key))


def run_flow_machine(db: Conn, service_db: Conn) -> None:
    class FlowMachine(RuleBasedStateMachine):
        leases = Bundle("leases")

        def __init__(self) -> None:
            super().__init__()
            self.model = Model()
            self.clock = datetime.now(UTC) - timedelta(days=1)

        @initialize()
        def empty_queue(self) -> None:
            db.execute("TRUNCATE notify.queue_jobs, notify.queue_limits")

        @rule(key=st.sampled_from([None, *KEYS]), count=st.integers(1, 4))
        def add(self, key: str | None, count: int) -> None:
            jobs = []
            for _ in range(count):  # distinct schedules: the order within a key is defined
                self.clock += timedelta(milliseconds=1)
                jobs.append(
                    {"job_type": "t", "limit_key": key, "scheduled_for": self.clock.isoformat()}
                )
            row = service_db.execute("SELECT notify.add_queue_jobs(%s)", (Jsonb(jobs),)).fetchone()
            assert row is not None
            self.model.pending.setdefault(key, []).extend(row[0])

        @rule(
            key=st.sampled_from(KEYS),
            burst=st.one_of(st.none(), st.integers(0, 3)),
            cap=st.one_of(st.none(), st.integers(1, 3)),
        )
        def set_limit(self, key: str, burst: int | None, cap: int | None) -> None:
            rate = None if burst is None else SLOW
            service_db.execute(
                "SELECT notify.set_queue_limit(%s, %s, %s, %s)", (key, rate, cap, burst)
            )
            old = self.model.limits.get(key)
            if burst is None and cap is None:
                self.model.limits.pop(key, None)
                return
            tokens = None
            if burst is not None:
                full = max(burst, 1)
                tokens = full if old is None or old.tokens is None else min(old.tokens, full)
            self.model.limits[key] = Limit(tokens, cap)

        @rule(key=st.sampled_from(KEYS))
        def pause(self, key: str) -> None:
            service_db.execute("SELECT notify.pause_queue_limit(%s, 3600)", (key,))
            self.model.limits.setdefault(key, Limit()).paused = True

        @rule()
        def pauses_end(self) -> None:
            db.execute("UPDATE notify.queue_limits SET paused_until = now() - interval '1 second'")
            for limit in self.model.limits.values():
                limit.paused = False

        @rule(target=leases, batch=st.integers(1, 6))
        def claim(self, batch: int) -> object:
            model = self.model
            rows = service_db.execute(
                "SELECT c.id, c.processing_token, j.limit_key "
                "FROM notify.claim_pending_jobs('{t}', %s) c JOIN notify.queue_jobs j USING (id)",
                (batch,),
            ).fetchall()
            assert len(rows) <= batch
            got: dict[str | None, list[UUID]] = {}
            for job_id, _, key in rows:
                got.setdefault(key, []).append(job_id)
            groups = set(model.pending) | set(got)
            for key in groups:
                taken = got.get(key, [])
                assert len(taken) <= model.allowance(key), (key, len(taken))
                # the key's earliest jobs, in order
                assert (
                    sorted(taken, key=model.pending[key].index) == model.pending[key][: len(taken)]
                )
            before = {key: model.startable(key) for key in groups}
            for key, taken in got.items():
                del model.pending[key][: len(taken)]
                model.running[key] += len(taken)
                limit = model.limits.get(key) if key is not None else None
                if limit is not None and limit.tokens is not None:
                    limit.tokens -= len(taken)
            after = {key: model.startable(key) for key in groups}
            if len(rows) < batch:
                assert all(n == 0 for n in after.values()), ("short batch", after)
            for x in groups:
                for y in groups:
                    n_x, n_y = len(got.get(x, [])), len(got.get(y, []))
                    if n_y >= n_x + 2:
                        assert after[x] == 0, ("unfair", x, n_x, y, n_y, before)
            return multiple(*[(job_id, token, key) for job_id, token, key in rows])

        @rule(lease=consumes(leases))
        def complete(self, lease: tuple[UUID, UUID, str | None]) -> None:
            job_id, token, key = lease
            assert service_db.execute(
                "SELECT notify.complete_queue_job(%s, NULL, %s)", (job_id, token)
            ).fetchone() == (True,)
            self.model.running[key] -= 1

    run_state_machine_as_test(
        FlowMachine,
        settings=settings(
            max_examples=60,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )


def test_claim_under_flow_control_matches_the_model(db: Conn, service_db: Conn) -> None:
    run_flow_machine(db, service_db)
