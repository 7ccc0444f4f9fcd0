"""/metrics: Prometheus families read at scrape time from the operate functions.

A scrape is two SQL calls: get_queue_health (live jobs through the partial indexes,
finished ones within 24 h through queue_jobs_completed_at_idx) and
get_delivery_status_counts('24 hours') (the status counts of 0011, whole 15-minute
slices only), so its cost does not grow with the deliveries table (BENCHMARKS.md).
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
            health, statuses = self.run(
                lambda conn: (
                    monitor.queue_health(conn, self.schema),
                    monitor.delivery_status_counts(conn, self.schema, "24 hours"),
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
