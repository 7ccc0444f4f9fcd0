"""/metrics: Prometheus families read at scrape time from the operate functions.

A scrape is three SQL calls: get_queue_health (live jobs through the partial indexes,
finished ones within 24 h through queue_jobs_completed_at_idx),
get_delivery_status_counts('24 hours') (the status counts of 0011, whole 15-minute
slices only), so its cost does not grow with the deliveries table (BENCHMARKS.md),
and queue_limit_status (one row per limit key: keys become label values, so keep their
number to what a Prometheus series count can carry).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from notify_sql import monitor


class QueueCollector(Collector):
    def __init__(self, run: Callable[[Callable[[Any], Any]], Any], schema: str) -> None:
        self.run = run
        self.schema = schema

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("notify_database_up", "1 when the database answered this scrape")
        try:
            health, statuses, limits = self.run(
                lambda conn: (
                    monitor.queue_health(conn, self.schema),
                    monitor.delivery_status_counts(conn, self.schema, "24 hours"),
                    monitor.limits(conn, self.schema),
                )
            )
        except psycopg.Error:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        jobs = GaugeMetricFamily(
            "notify_queue_jobs",
            "Jobs per type and status (finished statuses: finished within the last 24 h)",
            labels=["job_type", "status"],
        )
        oldest = GaugeMetricFamily(
            "notify_queue_oldest_pending_age_seconds",
            "How long the oldest due pending job has waited",
            labels=["job_type"],
        )
        stalled = GaugeMetricFamily(
            "notify_queue_stalled_jobs",
            "Processing jobs with no heartbeat within 5 minutes",
            labels=["job_type"],
        )
        failed_hour = GaugeMetricFamily(
            "notify_queue_failed_last_hour", "Jobs failed for good in the last hour",
            labels=["job_type"],
        )  # fmt: skip
        per_type: dict[str, dict[str, float]] = {}
        for row in health:
            jobs.add_metric([row["job_type"], row["status"]], row["job_count"])
            figures = per_type.setdefault(
                row["job_type"], {"oldest": 0.0, "stalled": 0.0, "failed": 0.0}
            )
            figures["oldest"] = max(figures["oldest"], row["oldest_pending_age"] or 0.0)
            figures["stalled"] += row["stalled_jobs"]
            figures["failed"] += row["failed_last_hour"]
        for job_type, figures in per_type.items():
            oldest.add_metric([job_type], figures["oldest"])
            stalled.add_metric([job_type], figures["stalled"])
            failed_hour.add_metric([job_type], figures["failed"])
        deliveries = GaugeMetricFamily(
            "notify_deliveries_24h",
            "Deliveries created in the last 24 h (whole 15-minute slices) per channel and "
            "current status",
            labels=["channel", "status"],
        )
        for row in statuses:
            deliveries.add_metric([row["channel"], row["status"]], row["deliveries"])
        yield from (jobs, oldest, stalled, failed_hour, deliveries)
        yield from _limit_families(limits)


LIMIT_FAMILIES = (
    # (name suffix, help, column); a key without that limit has no sample
    ("backlog", "Pending jobs of the limit key, due or not", "backlog"),
    ("running", "Processing jobs of the limit key", "running"),
    ("starts_per_second", "Job starts per second over about the last minute", "current_rate"),
    ("max_per_second", "The key's rate limit (token bucket refill per second)", "max_per_second"),
    ("burst", "The key's burst (token bucket size)", "burst"),
    ("max_concurrent", "The key's cap on processing jobs", "max_concurrent"),
    ("tokens", "Tokens in the key's bucket now", "tokens"),
)


def _limit_families(limits: list[dict[str, Any]]) -> Iterator[GaugeMetricFamily]:
    for suffix, text, column in LIMIT_FAMILIES:
        family = GaugeMetricFamily(f"notify_queue_limit_{suffix}", text, labels=["limit_key"])
        for row in limits:
            if row[column] is not None:
                family.add_metric([row["limit_key"]], row[column])
        yield family
    paused = GaugeMetricFamily(
        "notify_queue_limit_paused", "1 while the key is paused", labels=["limit_key"]
    )
    for row in limits:
        paused.add_metric([row["limit_key"]], 0 if row["paused_until"] is None else 1)
    yield paused
