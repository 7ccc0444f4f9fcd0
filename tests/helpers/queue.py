"""Queue test helpers."""

from __future__ import annotations

from typing import Any
from uuid import UUID


def new_job(job_type: str, metadata: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """One element of ``add_queue_jobs``'s JSON array; fields left None are not sent, so
    the SQL defaults apply."""
    job = {"job_type": job_type, "metadata": metadata, **fields}
    return {k: str(v) if isinstance(v, UUID) else v for k, v in job.items() if v is not None}
