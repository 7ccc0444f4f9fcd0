"""The worker loop: claim a batch, run a handler per job, record the outcomes.

``Worker(dsn, job_types, handler).run()`` claims a batch, runs ``handler(job)`` for each
job (one at a time, or ``concurrency`` at once on a thread pool), then completes the
batch in one call (``complete_queue_jobs``) and fails the jobs whose handler raised
(``fail_queue_jobs``, which retries with backoff). While a batch runs, a thread
heartbeats every held job so ``reset_stalled_jobs`` leaves it alone.

Waking: with ``listen=True`` the worker LISTENs on the queue's channel and wakes as soon
as a job is enqueued; it also polls every ``poll_interval`` seconds, so it keeps making
progress where LISTEN is unavailable (behind a transaction-mode pooler use
``listen=False``) or a notification is lost. Jobs held back by their limit key's rate or
pause announce nothing when they become claimable, so before it waits the worker asks
``next_limited_start()`` and claims again at that moment if it comes before the next
poll (with or without LISTEN). A key held back by its concurrency cap has no such
moment: the job that frees a slot sends a NOTIFY when it leaves ``processing``.

Stopping: SIGTERM or SIGINT (or :meth:`Worker.stop`) lets the job in hand finish,
reports what was done, hands the claimed but unstarted jobs back
(``release_queue_jobs``) and returns. A second signal releases the job in hand too.

Connection loss: if the connection drops after handlers ran but before their outcomes
were recorded, the outcomes are recorded on a fresh connection (the tokens are still
valid, so nothing runs twice; if the lost attempt had in fact committed, the retry
finds nothing left to do and counts those jobs as fenced). A claim on a lost
connection raises: run the worker under a supervisor that restarts it.

Upkeep (``maintenance=True``, the default): every worker takes part in a leader
election through a session-level advisory lock held on a dedicated connection; the
leader re-queues stalled jobs (``reset_stalled_jobs`` with ``stall_timeout``) and, every
``upkeep_interval``, runs ``run_queue_upkeep`` (stalled jobs, pruning past
``retention``, folding the funnel sums; a log line on the limit keys held back or
paused, when there are limit keys). When the leader dies its session ends, the lock
is free and another worker takes it at its next tick.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from operator import itemgetter
from types import FrameType
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb, set_json_loads

from notify_sql.rpc import DEFAULT_SCHEMA, wake_channel

JsonObject = Mapping[str, Any]


@dataclass(frozen=True)
class ClaimedJob:
    """A row of ``claim_pending_jobs`` as the worker holds it. The generated row class types
    every column as optional (the catalog cannot say otherwise); a claimed job always has
    its id, type, attempts and token, and the worker's code relies on that."""

    id: UUID
    queue_job_id: str
    user_id: UUID | None
    job_type: str
    metadata: dict[str, Any]
    status: str
    priority: int
    attempts: int
    max_attempts: int
    scheduled_for: datetime
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    error_message: str | None
    processing_token: UUID


Handler = Callable[[ClaimedJob], JsonObject | None]
Conn = psycopg.Connection[Any]
T = TypeVar("T")
log = logging.getLogger(__name__)

# Recording a batch's outcomes is retried on a fresh connection this many times, with
# these pauses (seconds): the tokens stay valid until the stall timeout, minutes away.
FINISH_RETRY_PAUSES = (0.0, 0.5, 2.0, 5.0)
CLAIMED_FIELDS = tuple(field.name for field in fields(ClaimedJob))
# Waking for a job held back by its key's rate or pause (seconds). The moment named is
# rounded to microseconds: a claim exactly at it could find its key's bucket a hair
# short of a token and start nothing, and once the moment has passed the key is no
# longer named, so its job would wait for the poll. A millisecond's margin rules that
# out. (A wake that comes early anyway costs a claim: see Worker._pause.)
WAKE_MARGIN = 0.001
MIN_PAUSE = 0.01  # the shortest wait after a wake that found nothing (see Worker._pause)


_decode_json = json.JSONDecoder().raw_decode


def _load_canonical_json(data: str | bytes) -> Any:
    return _decode_json(data if isinstance(data, str) else data.decode())[0]


def _claimed_job(values: tuple[Any, ...]) -> ClaimedJob:
    """ClaimedJob from its field values, without the frozen dataclass's __init__ (one
    object.__setattr__ per field: about 4 us a job, 4 % of a no-op drain). The object is
    a plain ClaimedJob, still frozen against later assignment."""
    job = object.__new__(ClaimedJob)
    job.__dict__.update(zip(CLAIMED_FIELDS, values, strict=True))
    return job


@dataclass
class WorkerStats:
    """What a run did; ``fenced`` counts jobs whose outcome was refused because their
    token was no longer current (reset as stalled, or cancelled, meanwhile); ``retried``
    counts failed jobs that went back to the queue for another attempt."""

    completed: int = 0
    failed: int = 0
    retried: int = 0
    released: int = 0
    fenced: int = 0
    batches: int = 0

    def line(self) -> str:
        return " ".join(f"{name}={value}" for name, value in vars(self).items())


class _Statements:
    """Every SQL statement the worker sends, composed once (the hot path re-sends the
    same bytes, which psycopg then prepares on the server).

    The claim's arguments never change during a run, so they are written into the
    statement as literals: nothing to adapt per claim. Job ids and tokens travel as
    binary ``uuid[]`` (``%b``): 16 bytes each, without formatting every UUID as text
    and scanning it for characters to quote."""

    def __init__(self, schema: str, job_types: Sequence[str], batch_size: int) -> None:
        def call(text: str, **literals: Any) -> bytes:
            values = {name: sql.Literal(value) for name, value in literals.items()}
            query = sql.SQL(text).format(schema=sql.Identifier(schema), **values)
            return query.as_bytes(None)

        self.claim = call(
            "SELECT * FROM {schema}.claim_pending_jobs({types}::text[], {size}::integer)",
            types=list(job_types), size=batch_size,
        )  # fmt: skip
        self.complete = call("SELECT {schema}.complete_queue_jobs(%b, %b)")
        self.complete_with_results = call("SELECT {schema}.complete_queue_jobs(%b, %b, %s)")
        self.fail = call("SELECT {schema}.fail_queue_jobs(%b, %b, %s)")
        self.release = call("SELECT {schema}.release_queue_jobs(%b, %b)")
        self.heartbeat = call("SELECT {schema}.heartbeat_queue_job(%s, %s)")
        self.reset_stalled = call("SELECT {schema}.reset_stalled_jobs(%s)")
        self.upkeep = call("SELECT * FROM {schema}.run_queue_upkeep(%s, %s)")
        # Idle path only: seconds until a job held back by its key's rate or pause may
        # start (NULL: none), as a difference of two readings of the server's clock, so
        # the client's clock (skewed, or stepped) never enters into it.
        self.next_start = call(
            "SELECT extract(epoch FROM {schema}.next_limited_start() - clock_timestamp())::float8"
        )
        # Flow control at a glance for the upkeep log line: limit keys, those with a
        # backlog their limit holds back now (pause, empty bucket or full cap), paused.
        self.limits = call(
            "SELECT count(*), count(*) FILTER (WHERE backlog > 0 AND (paused_until IS NOT NULL"
            " OR tokens < 1 OR running >= max_concurrent)), count(paused_until), "
            "coalesce(sum(backlog), 0) FROM {schema}.queue_limit_status()"
        )
        # One lock per install schema: the key is derived from its name in SQL.
        self.try_lead = b"SELECT pg_try_advisory_lock(hashtext('notify-sql upkeep ' || %s))"
        self.listen = sql.SQL("LISTEN {}").format(sql.Identifier(wake_channel(schema)))


class _Abandon(BaseException):
    """Raised in the main thread by a second stop signal: release the job in hand."""


@dataclass
class _Batch:
    """The outcomes of one claimed batch, as the arrays the SQL calls take."""

    done_ids: list[UUID]
    done_tokens: list[UUID]
    results: list[Jsonb | None]
    has_results: bool
    failed_ids: list[UUID]
    failed_tokens: list[UUID]
    messages: list[str]
    retriable: set[UUID]
    unstarted_ids: list[UUID]
    unstarted_tokens: list[UUID]

    @classmethod
    def empty(cls) -> _Batch:
        return cls([], [], [], False, [], [], [], set(), [], [])

    def done(self, job: ClaimedJob, result: JsonObject | None) -> None:
        self.done_ids.append(job.id)
        self.done_tokens.append(job.processing_token)
        if result is None:
            self.results.append(None)
        else:
            self.results.append(Jsonb(dict(result)))
            self.has_results = True

    def fail(self, job: ClaimedJob, error: Exception) -> None:
        log.warning("job %s (%s) failed: %r", job.id, job.job_type, error)
        self.failed_ids.append(job.id)
        self.failed_tokens.append(job.processing_token)
        self.messages.append(f"{type(error).__name__}: {error}")
        # attempts counts the earlier attempts: fail_queue_jobs counts this one and
        # re-queues while attempts + 1 < max_attempts.
        if job.attempts + 1 < job.max_attempts:
            self.retriable.add(job.id)

    def unstarted(self, job: ClaimedJob) -> None:
        self.unstarted_ids.append(job.id)
        self.unstarted_tokens.append(job.processing_token)


class Worker:
    def __init__(
        self,
        dsn: str,
        job_types: Sequence[str],
        handler: Handler,
        *,
        schema: str = DEFAULT_SCHEMA,
        batch_size: int = 10,
        concurrency: int = 1,
        poll_interval: float = 5.0,
        heartbeat_interval: float = 60.0,
        listen: bool = True,
        maintenance: bool = True,
        stall_timeout: timedelta = timedelta(minutes=5),
        retention: timedelta = timedelta(days=7),
        upkeep_interval: float = 60.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.dsn = dsn
        self.job_types = list(job_types)
        self.handler = handler
        self.schema = schema
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.heartbeat_interval = heartbeat_interval
        self.listen = listen
        self.maintenance = maintenance
        self.stall_timeout = stall_timeout
        self.retention = retention
        self.upkeep_interval = upkeep_interval
        self.stats = WorkerStats()
        self.is_leader = False
        self.abandoned = False
        self._sql = _Statements(schema, self.job_types, batch_size)
        self._stopping = threading.Event()
        self._held: dict[UUID, UUID] = {}
        self._held_lock = threading.Lock()
        self._in_handler = False
        self._cur: psycopg.Cursor[Any] | None = None
        self._claim_cur: psycopg.Cursor[Any] | None = None
        self._pick: Callable[[Any], tuple[Any, ...]] | None = None
        self._named_wake = False  # the last wait was cut short by next_limited_start()

    def stop(self) -> None:
        """Asks the loop to finish the job in hand and return (thread- and signal-safe)."""
        self._stopping.set()

    def run(self, *, install_signal_handler: bool = True) -> WorkerStats:
        """Works until :meth:`stop`, SIGTERM or SIGINT; returns what it did."""
        log.info(
            "worker started pid=%d job_types=%s batch_size=%d concurrency=%d maintenance=%s "
            "stall_timeout=%ss",
            os.getpid(), ",".join(self.job_types), self.batch_size, self.concurrency,
            "on" if self.maintenance else "off", self.stall_timeout.total_seconds(),
        )  # fmt: skip
        try:
            with (
                self._stop_signals(install_signal_handler),
                self._connection(),
                self._listener() as listener,
                self._heartbeating(),
                self._upkeep(),
                self._pool() as pool,
            ):
                while not self._stopping.is_set():
                    assert self._cur is not None
                    jobs = self._claim(self._cur)
                    if jobs:
                        self._work(jobs, pool)
                    if len(jobs) < self.batch_size:
                        self._wait(listener, found_nothing=not jobs)
        finally:
            log.info("worker stopped %s", self.stats.line())
        return self.stats

    # -- the loop -----------------------------------------------------------------------

    def _claim(self, cur: psycopg.Cursor[Any]) -> list[ClaimedJob]:
        rows = cur.execute(self._sql.claim).fetchall()
        if not rows:
            return []
        if self._claim_cur is not cur:
            # Columns are matched to ClaimedJob's fields by name, once per connection (a
            # prepared statement's result shape cannot change under it), so a column
            # added to claim_pending_jobs shifts nothing.
            names = tuple(column.name for column in cur.description or ())
            self._pick = (
                None
                if names == CLAIMED_FIELDS
                else itemgetter(*(names.index(name) for name in CLAIMED_FIELDS))
            )
            self._claim_cur = cur
        if self._pick is None:  # the columns are the fields, in order: nothing to pick
            return [_claimed_job(row) for row in rows]
        return [_claimed_job(self._pick(row)) for row in rows]

    def _work(self, jobs: list[ClaimedJob], pool: ThreadPoolExecutor | None) -> None:
        with self._held_lock:
            for job in jobs:
                self._held[job.id] = job.processing_token
        batch = _Batch.empty()
        try:
            if pool is None:
                self._run_in_turn(jobs, batch)
            else:
                self._run_on_pool(jobs, batch, pool)
        finally:
            # Jobs leave the heartbeat set before their outcome is recorded, so a
            # heartbeat refused from here on is never mistaken for a job taken away.
            with self._held_lock:
                for job in jobs:
                    self._held.pop(job.id, None)
            self._record(batch, len(jobs))

    def _run_in_turn(self, jobs: list[ClaimedJob], batch: _Batch) -> None:
        for position, job in enumerate(jobs):
            if self._stopping.is_set():
                for rest in jobs[position:]:
                    batch.unstarted(rest)
                return
            try:
                self._in_handler = True
                try:
                    result = self.handler(job)
                finally:
                    self._in_handler = False
            except _Abandon:
                for rest in jobs[position:]:
                    batch.unstarted(rest)
                return
            except Exception as error:
                batch.fail(job, error)
            else:
                batch.done(job, result)

    def _run_on_pool(self, jobs: list[ClaimedJob], batch: _Batch, pool: ThreadPoolExecutor) -> None:
        def run(job: ClaimedJob) -> tuple[bool, JsonObject | None]:
            if self._stopping.is_set():
                return False, None
            return True, self.handler(job)

        futures: list[Future[tuple[bool, JsonObject | None]]] = [
            pool.submit(run, job) for job in jobs
        ]
        try:
            self._in_handler = True
            try:
                wait_all(futures)
            finally:
                self._in_handler = False
        except _Abandon:
            # Jobs still running are handed back; their late outcomes are dropped.
            for future in futures:
                future.cancel()
        for job, future in zip(jobs, futures, strict=True):
            if not future.done() or future.cancelled():
                batch.unstarted(job)
            elif (error := future.exception()) is not None:
                if isinstance(error, Exception):
                    batch.fail(job, error)
                else:
                    batch.unstarted(job)
            else:
                started, result = future.result()
                if started:
                    batch.done(job, result)
                else:
                    batch.unstarted(job)

    def _record(self, batch: _Batch, claimed: int) -> None:
        """Records every outcome of the batch, retrying on a fresh connection when the
        connection is lost: the tokens are still ours, so nothing is run again."""
        stats = self.stats
        completed = failed = retried = released = 0
        if batch.done_ids:
            done: tuple[Any, ...] = (batch.done_ids, batch.done_tokens)
            if batch.has_results:
                query, done = self._sql.complete_with_results, (*done, batch.results)
            else:
                query = self._sql.complete
            completed = len(self._on_fresh_connection(query, done))
            stats.fenced += len(batch.done_ids) - completed
        if batch.failed_ids:
            failures = (batch.failed_ids, batch.failed_tokens, batch.messages)
            changed = self._on_fresh_connection(self._sql.fail, failures)
            retried = sum(1 for job_id in changed if job_id in batch.retriable)
            failed = len(changed)
            stats.fenced += len(batch.failed_ids) - failed
        if batch.unstarted_ids:
            unstarted = (batch.unstarted_ids, batch.unstarted_tokens)
            released = len(self._on_fresh_connection(self._sql.release, unstarted))
        stats.completed += completed
        stats.failed += failed
        stats.retried += retried
        stats.released += released
        stats.batches += 1
        if log.isEnabledFor(logging.INFO):
            log.info(
                "batch claimed=%d completed=%d failed=%d retried=%d released=%d",
                claimed, completed, failed, retried, released,
            )  # fmt: skip

    def _on_fresh_connection(self, query: bytes, args: tuple[Any, ...]) -> list[UUID]:
        for attempt, pause in enumerate(FINISH_RETRY_PAUSES):
            try:
                if self._cur is None or self._cur.connection.closed:
                    time.sleep(pause)
                    self._cur = self._connect_for_jobs()
                row = self._cur.execute(query, args).fetchone()
                assert row is not None
                return list(row[0])
            except psycopg.OperationalError as error:
                if attempt == len(FINISH_RETRY_PAUSES) - 1:
                    raise
                log.warning("connection lost while recording a batch, retrying: %s", error)
                if self._cur is not None:
                    self._cur.connection.close()
                self._cur = None
        raise AssertionError("unreachable")

    def _wait(self, listener: Conn | None, *, found_nothing: bool) -> None:
        """Sleeps until a due job of ours is announced, the poll interval passes, a job
        held back by its key's rate or pause may start, or a stop is requested (checked
        at least twice a second)."""
        pause = self._pause(found_nothing)  # timed from the answer: never early
        deadline = time.monotonic() + pause
        while not self._stopping.is_set() and (remaining := deadline - time.monotonic()) > 0:
            if listener is None:
                self._stopping.wait(min(remaining, 0.5))
                continue
            for notify in listener.notifies(timeout=min(remaining, 0.5)):
                if notify.payload in self.job_types:
                    return

    def _pause(self, found_nothing: bool) -> float:
        """How long to wait before the next claim: the poll interval, or less when
        ``next_limited_start()`` names an earlier moment. That moment is later than the
        server's now() when it answers, so the key it names drops out of the answer
        once it has passed: a key never wakes the worker twice for the same token.

        At least MIN_PAUSE, though, in two cases, so that waking never turns into a
        claim loop. A moment already reached by the time of the answer (microseconds
        away): another worker may take that job first, and the next answer may again be
        "now". And a wake at a named moment that then found nothing: the moment is not
        per job type, so it may belong to keys of other types that other workers keep
        draining at their rate (each token names a new moment); without a floor, a
        worker of other types would claim at the sum of those rates. The floor delays
        a wake of its own by at most MIN_PAUSE, and only after a wasted one."""
        assert self._cur is not None
        row = self._cur.execute(self._sql.next_start).fetchone()
        woke_for_nothing = found_nothing and self._named_wake
        self._named_wake = False
        if row is None or row[0] is None:
            # A wake that came early (a clock running fast, a rounded moment) finds
            # nothing, and the moment may have passed by the time of this answer, so
            # the key is no longer named: look once more, MIN_PAUSE later, before
            # falling back to the poll (once: _named_wake is now False).
            return min(self.poll_interval, MIN_PAUSE) if woke_for_nothing else self.poll_interval
        delay = float(row[0])
        pause = delay + WAKE_MARGIN
        if delay <= 0 or woke_for_nothing:
            pause = max(pause, MIN_PAUSE)
        if pause >= self.poll_interval:
            return self.poll_interval
        self._named_wake = True
        return pause

    # -- resources ----------------------------------------------------------------------

    def _connect_for_jobs(self) -> psycopg.Cursor[Any]:
        """The connection that claims and records jobs, and the one cursor every call
        goes through (a cursor per call costs about 5 us of client CPU). Claimed rows'
        jsonb is parsed with the decoder's ``raw_decode``: the server prints jsonb
        canonically (no surrounding whitespace, UTF-8), so ``json.loads``' encoding
        sniffing and whitespace scans are work for nothing, once per job."""
        conn = psycopg.connect(self.dsn, autocommit=True)
        set_json_loads(_load_canonical_json, conn)
        return conn.cursor()

    @contextmanager
    def _connection(self) -> Iterator[None]:
        self._cur = self._connect_for_jobs()
        try:
            yield
        finally:
            if self._cur is not None:
                self._cur.connection.close()
            self._cur = None

    @contextmanager
    def _pool(self) -> Iterator[ThreadPoolExecutor | None]:
        if self.concurrency == 1:
            yield None
            return
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="notify-sql-job")
        try:
            yield pool
        finally:
            # After an abandon, jobs still running are not waited for: they were released.
            pool.shutdown(wait=not self.abandoned, cancel_futures=True)

    @contextmanager
    def _listener(self) -> Iterator[Conn | None]:
        if not self.listen:
            yield None
            return
        with psycopg.connect(self.dsn, autocommit=True) as listener:
            listener.execute(self._sql.listen)
            yield listener

    @contextmanager
    def _background(self, name: str, loop: Callable[[threading.Event], None]) -> Iterator[None]:
        finished = threading.Event()
        thread = threading.Thread(target=loop, args=(finished,), name=name, daemon=True)
        thread.start()
        try:
            yield
        finally:
            finished.set()
            thread.join()

    def _heartbeating(self) -> Any:
        """A thread that heartbeats every held job on its own connection, opened when
        there is something to heartbeat. A lost connection is logged and reopened at the
        next beat: the worker's main loop decides what a dead server means."""

        def beat(finished: threading.Event) -> None:
            conn: Conn | None = None
            try:
                while not finished.wait(self.heartbeat_interval):
                    with self._held_lock:
                        held = list(self._held.items())
                    if not held:
                        continue
                    try:
                        if conn is None or conn.closed:
                            conn = psycopg.connect(self.dsn, autocommit=True)
                        for job_id, token in held:
                            row = conn.execute(self._sql.heartbeat, (job_id, token)).fetchone()
                            if not (row and row[0]) and self._taken_away(job_id, token):
                                log.warning("job %s is no longer ours (reset or cancelled)", job_id)
                    except psycopg.OperationalError as error:
                        log.warning("heartbeat failed, retrying at the next beat: %s", error)
                        if conn is not None:
                            conn.close()
                        conn = None
            finally:
                if conn is not None:
                    conn.close()

        return self._background("notify-sql-heartbeat", beat)

    def _taken_away(self, job_id: UUID, token: UUID) -> bool:
        """A refused heartbeat means the job was taken away only if the worker still
        holds it: jobs leave the held set before their outcome is recorded. A job taken
        away is dropped from the set, so it is reported once and not beaten again."""
        with self._held_lock:
            if self._held.get(job_id) != token:
                return False
            del self._held[job_id]
            return True

    def _upkeep(self) -> Any:
        """Leader election and upkeep, on a dedicated connection (the session-level
        advisory lock lives exactly as long as that session)."""
        if not self.maintenance:
            return self._background("notify-sql-upkeep", lambda finished: None)
        tick = min(30.0, max(0.25, self.stall_timeout.total_seconds() / 4))

        def lead(finished: threading.Event) -> None:
            conn: Conn | None = None
            next_full = 0.0
            try:
                while not finished.is_set():
                    try:
                        if conn is None or conn.closed:
                            conn = psycopg.connect(self.dsn, autocommit=True)
                        if not self.is_leader:
                            row = conn.execute(self._sql.try_lead, (self.schema,)).fetchone()
                            self.is_leader = bool(row and row[0])
                            if self.is_leader:
                                log.info("upkeep leader=yes schema=%s", self.schema)
                        if self.is_leader:
                            next_full = self._upkeep_once(conn, next_full)
                    except psycopg.Error as error:
                        if self.is_leader:
                            log.warning("upkeep leader=no (connection lost: %s)", error)
                        self.is_leader = False
                        if conn is not None:
                            conn.close()
                        conn = None
                    finished.wait(tick)
            finally:
                if conn is not None:
                    conn.close()  # ends the session, so the lock is free at once
                self.is_leader = False

        return self._background("notify-sql-upkeep", lead)

    def _upkeep_once(self, conn: Conn, next_full: float) -> float:
        """Stalled jobs at every tick; everything else every ``upkeep_interval``."""
        if time.monotonic() >= next_full:
            row = conn.execute(self._sql.upkeep, (self.stall_timeout, self.retention)).fetchone()
            assert row is not None
            log.info("upkeep reset_stalled=%d pruned=%d folded_rollup_rows=%d", *row)
            keys = conn.execute(self._sql.limits).fetchone()
            if keys and keys[0]:
                log.info("upkeep limit_keys=%d held_back=%d paused=%d keyed_backlog=%d", *keys)
            return time.monotonic() + self.upkeep_interval
        row = conn.execute(self._sql.reset_stalled, (self.stall_timeout,)).fetchone()
        if row and row[0]:
            log.info("upkeep reset_stalled=%d", row[0])
        return next_full

    @contextmanager
    def _stop_signals(self, install: bool) -> Iterator[None]:
        """SIGTERM and SIGINT: the first stops after the job in hand, the second
        releases the job in hand as well."""
        if not install or threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_signal(signum: int, frame: FrameType | None) -> None:
            name = signal.Signals(signum).name
            if not self._stopping.is_set():
                log.info("stopping signal=%s (again to release the job in hand)", name)
                self.stop()
                return
            log.info("releasing the job in hand signal=%s", name)
            self.abandoned = True
            if self._in_handler:
                raise _Abandon

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
