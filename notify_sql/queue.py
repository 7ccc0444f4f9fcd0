"""Typed wrappers for the queue RPCs: ``Queue`` (sync) and ``AsyncQueue``.

Each method is one SQL call (see ``sql/functions/``): the database owns claiming,
fencing, retries and dedup; these classes only name the function, pass the contract's
argument names and type the result. Use an autocommit connection, so each call commits
by itself. Bad input raises :class:`notify_sql.errors.InvalidArgument` (SQLSTATE 22023).

Both classes build their calls from the same ``_Call`` constructors below, so the sync
and async APIs cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from notify_sql.rpc import DEFAULT_SCHEMA, acall_rows, acall_value, call_rows, call_value

JsonObject = Mapping[str, Any]
Row = TypeVar("Row")


def wake_channel(schema: str = DEFAULT_SCHEMA) -> str:
    """The LISTEN/NOTIFY channel enqueues signal on (payload: the job type)."""
    return f"{schema}.queue_jobs"


@dataclass(frozen=True)
class ClaimedJob:
    """A row returned by ``claim_pending_jobs``; keep ``processing_token`` to finish it."""

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


@dataclass(frozen=True)
class CancelledJob:
    id: UUID
    queue_job_id: str
    job_type: str
    status: str


@dataclass(frozen=True)
class BriefCancellation:
    cancelled_count: int
    cancelled_job_ids: list[str]


@dataclass(frozen=True)
class QueueStat:
    job_type: str
    status: str
    job_count: int
    oldest_created_at: datetime
    max_wait: timedelta | None


@dataclass(frozen=True)
class NewJob:
    """One element of a bulk enqueue (``add_queue_jobs``); None means the SQL default."""

    job_type: str
    metadata: JsonObject | None = None
    user_id: UUID | None = None
    priority: int | None = None
    scheduled_for: datetime | None = None
    dedup_key: str | None = None
    max_attempts: int | None = None

    def to_json(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "job_type": self.job_type,
            "metadata": None if self.metadata is None else dict(self.metadata),
            "user_id": None if self.user_id is None else str(self.user_id),
            "priority": self.priority,
            "scheduled_for": None if self.scheduled_for is None else self.scheduled_for.isoformat(),
            "dedup_key": self.dedup_key,
            "max_attempts": self.max_attempts,
        }
        return {name: value for name, value in fields.items() if value is not None}


@dataclass(frozen=True)
class _Call:
    function: str
    args: dict[str, object]


def _jsonb_array(values: Sequence[JsonObject | None]) -> list[Jsonb | None]:
    return [None if value is None else Jsonb(dict(value)) for value in values]


def _claim(job_types: Sequence[str], batch_size: int) -> _Call:
    return _Call("claim_pending_jobs", {"p_job_types": list(job_types), "p_batch_size": batch_size})


def _complete(job_id: UUID, token: UUID | None, result: JsonObject | None) -> _Call:
    return _Call(
        "complete_queue_job",
        {"p_job_id": job_id, "p_result": result, "p_processing_token": token},
    )


def _complete_many(
    job_ids: Sequence[UUID], tokens: Sequence[UUID], results: Sequence[JsonObject | None] | None
) -> _Call:
    return _Call(
        "complete_queue_jobs",
        {
            "p_job_ids": list(job_ids),
            "p_processing_tokens": list(tokens),
            "p_results": None if results is None else _jsonb_array(results),
        },
    )


def _fail(job_id: UUID, token: UUID | None, error_message: str | None, retry: bool) -> _Call:
    return _Call(
        "fail_queue_job",
        {
            "p_job_id": job_id,
            "p_error_message": error_message,
            "p_retry": retry,
            "p_processing_token": token,
        },
    )


def _fail_many(
    job_ids: Sequence[UUID], tokens: Sequence[UUID], error_messages: Sequence[str], retry: bool
) -> _Call:
    return _Call(
        "fail_queue_jobs",
        {
            "p_job_ids": list(job_ids),
            "p_processing_tokens": list(tokens),
            "p_error_messages": list(error_messages),
            "p_retry": retry,
        },
    )


def _release_many(job_ids: Sequence[UUID], tokens: Sequence[UUID]) -> _Call:
    return _Call(
        "release_queue_jobs", {"p_job_ids": list(job_ids), "p_processing_tokens": list(tokens)}
    )


def _heartbeat(job_id: UUID, token: UUID | None) -> _Call:
    return _Call("heartbeat_queue_job", {"p_job_id": job_id, "p_processing_token": token})


def _reset_stalled(stall_timeout: timedelta, batch_size: int) -> _Call:
    return _Call(
        "reset_stalled_jobs", {"p_stall_timeout": stall_timeout, "p_batch_size": batch_size}
    )


def _add(
    job_type: str,
    metadata: JsonObject,
    *,
    user_id: UUID | None,
    priority: int,
    scheduled_for: datetime | None,
    dedup_key: str | None,
) -> _Call:
    args: dict[str, object] = {
        "p_user_id": user_id,
        "p_job_type": job_type,
        "p_metadata": metadata,
        "p_priority": priority,
        "p_dedup_key": dedup_key,
    }
    if scheduled_for is not None:  # otherwise the SQL default, the database's now()
        args["p_scheduled_for"] = scheduled_for
    return _Call("add_queue_job", args)


def _add_many(jobs: Sequence[NewJob]) -> _Call:
    return _Call("add_queue_jobs", {"p_jobs": Jsonb([job.to_json() for job in jobs])})


def _cancel_jobs(
    user_id: UUID, job_type: str, metadata_filter: JsonObject | None, statuses: Sequence[str]
) -> _Call:
    return _Call(
        "cancel_jobs_atomic",
        {
            "p_user_id": user_id,
            "p_job_type": job_type,
            "p_metadata_filter": metadata_filter,
            "p_allowed_statuses": list(statuses),
        },
    )


def _cancel_briefs(user_id: UUID, brief_date: str, exclude_job_id: UUID | None) -> _Call:
    return _Call(
        "cancel_brief_jobs_for_date",
        {"p_user_id": user_id, "p_brief_date": brief_date, "p_exclude_job_id": exclude_job_id},
    )


def _cancel_one(job_id: UUID, reason: str, allow_processing: bool) -> _Call:
    return _Call(
        "cancel_job_with_reason",
        {"p_job_id": job_id, "p_reason": reason, "p_allow_processing": allow_processing},
    )


def _prune(older_than: timedelta, batch_size: int) -> _Call:
    return _Call("prune_queue_jobs", {"p_older_than": older_than, "p_batch_size": batch_size})


_STATS = _Call("queue_stats", {})
LIVE_STATUSES = ("pending", "processing")


class Queue:
    """The queue RPCs on a (preferably autocommit) psycopg connection."""

    def __init__(self, conn: psycopg.Connection[Any], schema: str = DEFAULT_SCHEMA) -> None:
        self.conn = conn
        self.schema = schema

    @property
    def channel(self) -> str:
        return wake_channel(self.schema)

    def _rows(self, call: _Call, row_type: type[Row]) -> list[Row]:
        return call_rows(self.conn, call.function, call.args, row_type, self.schema)

    def _value(self, call: _Call) -> Any:
        return call_value(self.conn, call.function, call.args, self.schema)

    def claim(self, job_types: Sequence[str], batch_size: int = 5) -> list[ClaimedJob]:
        return self._rows(_claim(job_types, batch_size), ClaimedJob)

    def complete(
        self, job_id: UUID, processing_token: UUID | None, result: JsonObject | None = None
    ) -> bool:
        return bool(self._value(_complete(job_id, processing_token, result)))

    def complete_many(
        self,
        job_ids: Sequence[UUID],
        processing_tokens: Sequence[UUID],
        results: Sequence[JsonObject | None] | None = None,
    ) -> list[UUID]:
        return list(self._value(_complete_many(job_ids, processing_tokens, results)))

    def fail(
        self,
        job_id: UUID,
        processing_token: UUID | None,
        error_message: str | None,
        retry: bool = True,
    ) -> bool:
        return bool(self._value(_fail(job_id, processing_token, error_message, retry)))

    def fail_many(
        self,
        job_ids: Sequence[UUID],
        processing_tokens: Sequence[UUID],
        error_messages: Sequence[str],
        retry: bool = True,
    ) -> list[UUID]:
        return list(self._value(_fail_many(job_ids, processing_tokens, error_messages, retry)))

    def release_many(
        self, job_ids: Sequence[UUID], processing_tokens: Sequence[UUID]
    ) -> list[UUID]:
        return list(self._value(_release_many(job_ids, processing_tokens)))

    def heartbeat(self, job_id: UUID, processing_token: UUID | None) -> bool:
        return bool(self._value(_heartbeat(job_id, processing_token)))

    def reset_stalled(
        self, stall_timeout: timedelta = timedelta(minutes=5), batch_size: int = 1000
    ) -> int:
        return int(self._value(_reset_stalled(stall_timeout, batch_size)))

    def add(
        self,
        job_type: str,
        metadata: JsonObject,
        *,
        user_id: UUID | None = None,
        priority: int = 10,
        scheduled_for: datetime | None = None,
        dedup_key: str | None = None,
    ) -> UUID:
        call = _add(
            job_type,
            metadata,
            user_id=user_id,
            priority=priority,
            scheduled_for=scheduled_for,
            dedup_key=dedup_key,
        )
        return UUID(str(self._value(call)))

    def add_many(self, jobs: Sequence[NewJob]) -> list[UUID]:
        return list(self._value(_add_many(jobs)))

    def cancel_jobs(
        self,
        user_id: UUID,
        job_type: str,
        metadata_filter: JsonObject | None = None,
        allowed_statuses: Sequence[str] = LIVE_STATUSES,
    ) -> list[CancelledJob]:
        call = _cancel_jobs(user_id, job_type, metadata_filter, allowed_statuses)
        return self._rows(call, CancelledJob)

    def cancel_briefs_for_date(
        self, user_id: UUID, brief_date: str, exclude_job_id: UUID | None = None
    ) -> BriefCancellation:
        return self._rows(_cancel_briefs(user_id, brief_date, exclude_job_id), BriefCancellation)[0]

    def cancel(self, job_id: UUID, reason: str, allow_processing: bool = False) -> bool:
        return bool(self._value(_cancel_one(job_id, reason, allow_processing)))

    def stats(self) -> list[QueueStat]:
        return self._rows(_STATS, QueueStat)

    def prune(self, older_than: timedelta = timedelta(days=7), batch_size: int = 5000) -> int:
        """Deletes finished jobs older than ``older_than``, one committed batch per call
        until a batch comes back short; returns the total. Needs an autocommit connection
        so that each batch's locks are released before the next."""
        total = 0
        while True:
            deleted = int(self._value(_prune(older_than, batch_size)))
            total += deleted
            if deleted < batch_size:
                return total


class AsyncQueue:
    """Async twin of :class:`Queue`, on a psycopg ``AsyncConnection``."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], schema: str = DEFAULT_SCHEMA) -> None:
        self.conn = conn
        self.schema = schema

    @property
    def channel(self) -> str:
        return wake_channel(self.schema)

    async def _rows(self, call: _Call, row_type: type[Row]) -> list[Row]:
        return await acall_rows(self.conn, call.function, call.args, row_type, self.schema)

    async def _value(self, call: _Call) -> Any:
        return await acall_value(self.conn, call.function, call.args, self.schema)

    async def claim(self, job_types: Sequence[str], batch_size: int = 5) -> list[ClaimedJob]:
        return await self._rows(_claim(job_types, batch_size), ClaimedJob)

    async def complete(
        self, job_id: UUID, processing_token: UUID | None, result: JsonObject | None = None
    ) -> bool:
        return bool(await self._value(_complete(job_id, processing_token, result)))

    async def complete_many(
        self,
        job_ids: Sequence[UUID],
        processing_tokens: Sequence[UUID],
        results: Sequence[JsonObject | None] | None = None,
    ) -> list[UUID]:
        return list(await self._value(_complete_many(job_ids, processing_tokens, results)))

    async def fail(
        self,
        job_id: UUID,
        processing_token: UUID | None,
        error_message: str | None,
        retry: bool = True,
    ) -> bool:
        return bool(await self._value(_fail(job_id, processing_token, error_message, retry)))

    async def fail_many(
        self,
        job_ids: Sequence[UUID],
        processing_tokens: Sequence[UUID],
        error_messages: Sequence[str],
        retry: bool = True,
    ) -> list[UUID]:
        call = _fail_many(job_ids, processing_tokens, error_messages, retry)
        return list(await self._value(call))

    async def release_many(
        self, job_ids: Sequence[UUID], processing_tokens: Sequence[UUID]
    ) -> list[UUID]:
        return list(await self._value(_release_many(job_ids, processing_tokens)))

    async def heartbeat(self, job_id: UUID, processing_token: UUID | None) -> bool:
        return bool(await self._value(_heartbeat(job_id, processing_token)))

    async def reset_stalled(
        self, stall_timeout: timedelta = timedelta(minutes=5), batch_size: int = 1000
    ) -> int:
        return int(await self._value(_reset_stalled(stall_timeout, batch_size)))

    async def add(
        self,
        job_type: str,
        metadata: JsonObject,
        *,
        user_id: UUID | None = None,
        priority: int = 10,
        scheduled_for: datetime | None = None,
        dedup_key: str | None = None,
    ) -> UUID:
        call = _add(
            job_type,
            metadata,
            user_id=user_id,
            priority=priority,
            scheduled_for=scheduled_for,
            dedup_key=dedup_key,
        )
        return UUID(str(await self._value(call)))

    async def add_many(self, jobs: Sequence[NewJob]) -> list[UUID]:
        return list(await self._value(_add_many(jobs)))

    async def cancel_jobs(
        self,
        user_id: UUID,
        job_type: str,
        metadata_filter: JsonObject | None = None,
        allowed_statuses: Sequence[str] = LIVE_STATUSES,
    ) -> list[CancelledJob]:
        call = _cancel_jobs(user_id, job_type, metadata_filter, allowed_statuses)
        return await self._rows(call, CancelledJob)

    async def cancel_briefs_for_date(
        self, user_id: UUID, brief_date: str, exclude_job_id: UUID | None = None
    ) -> BriefCancellation:
        rows = await self._rows(
            _cancel_briefs(user_id, brief_date, exclude_job_id), BriefCancellation
        )
        return rows[0]

    async def cancel(self, job_id: UUID, reason: str, allow_processing: bool = False) -> bool:
        return bool(await self._value(_cancel_one(job_id, reason, allow_processing)))

    async def stats(self) -> list[QueueStat]:
        return await self._rows(_STATS, QueueStat)

    async def prune(self, older_than: timedelta = timedelta(days=7), batch_size: int = 5000) -> int:
        """See :meth:`Queue.prune`."""
        total = 0
        while True:
            deleted = int(await self._value(_prune(older_than, batch_size)))
            total += deleted
            if deleted < batch_size:
                return total
