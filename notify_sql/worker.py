"""A small worker loop on top of :class:`notify_sql.queue.Queue`.

``Worker(dsn, job_types, handler).run()`` claims a batch, runs ``handler(job)`` for each
job, then completes the batch in one call (``complete_queue_jobs``) and fails the jobs
whose handler raised (``fail_queue_jobs``, which retries with backoff). While a batch
runs, a thread heartbeats every held job so ``reset_stalled_jobs`` leaves it alone.

Waking: with ``listen=True`` the worker LISTENs on the queue's channel and wakes as soon
as a job is enqueued; it also polls every ``poll_interval`` seconds, so it keeps making
progress where LISTEN is unavailable (behind a transaction-mode pooler use
``listen=False``) or a notification is lost.

Stopping: SIGTERM (or :meth:`Worker.stop`) lets the job in hand finish, reports what was
done, hands the claimed but unstarted jobs back (``release_queue_jobs``) and returns.

Failures: ``run`` raises when its connection is lost; run it under a supervisor that
restarts it. Jobs it held stay ``processing`` until ``reset_stalled_jobs`` (which an
operator schedules, e.g. every minute) re-queues them, and its stale tokens can no
longer complete them.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from time import monotonic
from types import FrameType
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from notify_sql.rpc import DEFAULT_SCHEMA, wake_channel
from notify_sql.wrappers import Queue
from notify_sql.wrappers.queue import ClaimPendingJobsRow as ClaimedJob

JsonObject = Mapping[str, Any]

Handler = Callable[[ClaimedJob], JsonObject | None]
log = logging.getLogger(__name__)


@dataclass
class WorkerStats:
    """What a run did; ``fenced`` counts jobs whose outcome was refused because their
    token was no longer current (reset as stalled, or cancelled, meanwhile)."""

    completed: int = 0
    failed: int = 0
    released: int = 0
    fenced: int = 0


class Worker:
    def __init__(
        self,
        dsn: str,
        job_types: Sequence[str],
        handler: Handler,
        *,
        schema: str = DEFAULT_SCHEMA,
        batch_size: int = 10,
        poll_interval: float = 5.0,
        heartbeat_interval: float = 60.0,
        listen: bool = True,
    ) -> None:
        self.dsn = dsn
        self.job_types = list(job_types)
        self.handler = handler
        self.schema = schema
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.heartbeat_interval = heartbeat_interval
        self.listen = listen
        self.stats = WorkerStats()
        self._stopping = threading.Event()
        self._held: dict[UUID, UUID] = {}
        self._held_lock = threading.Lock()

    def stop(self) -> None:
        """Asks the loop to finish the job in hand and return (thread- and signal-safe)."""
        self._stopping.set()

    def run(self, *, install_signal_handler: bool = True) -> WorkerStats:
        """Works until :meth:`stop` or SIGTERM; returns what it did."""
        with (
            self._sigterm_stops(install_signal_handler),
            psycopg.connect(self.dsn, autocommit=True) as conn,
            self._listener() as listener,
            self._heartbeating(),
        ):
            queue = Queue(conn, self.schema)
            while not self._stopping.is_set():
                jobs = queue.claim_pending_jobs(self.job_types, batch_size=self.batch_size)
                if jobs:
                    self._work(queue, jobs)
                if len(jobs) < self.batch_size:
                    self._wait(listener)
        return self.stats

    def _work(self, queue: Queue, jobs: list[ClaimedJob]) -> None:
        with self._held_lock:
            self._held.update({job.id: job.processing_token for job in jobs})  # type: ignore[misc]
        done: list[tuple[ClaimedJob, JsonObject | None]] = []
        failed: list[tuple[ClaimedJob, str]] = []
        unstarted: list[ClaimedJob] = []
        for position, job in enumerate(jobs):
            if self._stopping.is_set():
                unstarted = jobs[position:]
                break
            try:
                done.append((job, self.handler(job)))
            except Exception as error:
                log.warning("job %s (%s) failed: %r", job.id, job.job_type, error)
                failed.append((job, f"{type(error).__name__}: {error}"))
        if done:
            completed = queue.complete_queue_jobs(
                [job.id for job, _ in done],
                [job.processing_token for job, _ in done],
                results=[result for _, result in done],
            )
            self.stats.completed += len(completed or [])
            self.stats.fenced += len(done) - len(completed or [])
        if failed:
            changed = queue.fail_queue_jobs(
                [job.id for job, _ in failed],
                [job.processing_token for job, _ in failed],
                [message for _, message in failed],
            )
            self.stats.failed += len(changed or [])
            self.stats.fenced += len(failed) - len(changed or [])
        if unstarted:
            released = queue.release_queue_jobs(
                [job.id for job in unstarted], [job.processing_token for job in unstarted]
            )
            self.stats.released += len(released or [])
        with self._held_lock:
            for job in jobs:
                self._held.pop(job.id, None)  # type: ignore[arg-type]

    def _wait(self, listener: psycopg.Connection[Any] | None) -> None:
        """Sleeps until a due job of ours is announced, the poll interval passes, or a
        stop is requested (checked at least twice a second)."""
        deadline = monotonic() + self.poll_interval
        while not self._stopping.is_set() and (remaining := deadline - monotonic()) > 0:
            if listener is None:
                self._stopping.wait(min(remaining, 0.5))
                continue
            for notify in listener.notifies(timeout=min(remaining, 0.5)):
                if notify.payload in self.job_types:
                    return

    @contextmanager
    def _listener(self) -> Iterator[psycopg.Connection[Any] | None]:
        if not self.listen:
            yield None
            return
        with psycopg.connect(self.dsn, autocommit=True) as listener:
            listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(wake_channel(self.schema))))
            yield listener

    @contextmanager
    def _heartbeating(self) -> Iterator[None]:
        """A thread that heartbeats every held job on its own connection, opened when
        there is something to heartbeat. A lost connection is logged and reopened at the
        next beat: the worker's main loop decides what a dead server means."""
        finished = threading.Event()

        def beat() -> None:
            conn: psycopg.Connection[Any] | None = None
            try:
                while not finished.wait(self.heartbeat_interval):
                    with self._held_lock:
                        held = list(self._held.items())
                    if not held:
                        continue
                    try:
                        if conn is None or conn.closed:
                            conn = psycopg.connect(self.dsn, autocommit=True)
                        queue = Queue(conn, self.schema)
                        for job_id, token in held:
                            if not queue.heartbeat_queue_job(job_id, token):
                                log.warning("job %s is no longer ours (reset or cancelled)", job_id)
                    except psycopg.OperationalError as error:
                        log.warning("heartbeat failed, retrying at the next beat: %s", error)
                        if conn is not None:
                            conn.close()
                        conn = None
            finally:
                if conn is not None:
                    conn.close()

        thread = threading.Thread(target=beat, name="notify-sql-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            finished.set()
            thread.join()

    @contextmanager
    def _sigterm_stops(self, install: bool) -> Iterator[None]:
        if not install or threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            self.stop()

        previous = signal.signal(signal.SIGTERM, on_sigterm)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)
