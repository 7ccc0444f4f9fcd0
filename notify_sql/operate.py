"""Running and watching notify-sql: the ``worker``, ``stats`` and ``serve`` commands.

Registered on the ``notify-sql`` group by :mod:`notify_sql.cli`. Every failure the user
can cause ends as one line on stderr and exit code 2 (``cli.main`` does that).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import threading
import time
from datetime import timedelta
from typing import Any, cast

import click
import psycopg

from notify_sql import monitor
from notify_sql.cli import UsageProblem, _database_options, _dsn
from notify_sql.worker import Handler, Worker

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
LOG_FLUSH_SECONDS = 0.2


class _SecondFormatter(logging.Formatter):
    """``asctime`` as ``logging.Formatter`` writes it, with the seconds part formatted
    once per second instead of by ``time.strftime`` on every record."""

    _second = -1
    _prefix = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._prefix = time.strftime(self.default_time_format, self.converter(second))
            self._second = second
        return f"{self._prefix},{int(record.msecs):03d}"  # default_msec_format


class _BufferedStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The command's log lines on stderr's file descriptor, block-buffered: Python's own
    stderr is line-buffered, one ``write()`` system call per line (a line per batch).
    A daemon thread flushes every ``LOG_FLUSH_SECONDS``; WARNING and above are written
    at once; :meth:`close` (``logging.shutdown``, run at exit) writes what is left."""

    def __init__(self) -> None:
        stream = open(  # noqa: SIM115 - closed by close(), after the last flush
            sys.stderr.fileno(), "w", buffering=1 << 16, encoding=sys.stderr.encoding,
            errors="backslashreplace", closefd=False,
        )  # fmt: skip
        super().__init__(stream)
        self._closing = threading.Event()
        threading.Thread(target=self._flush_often, name="log-flush", daemon=True).start()

    def _flush_often(self) -> None:
        while not self._closing.wait(LOG_FLUSH_SECONDS):
            self.flush()

    def emit(self, record: logging.LogRecord) -> None:
        # StreamHandler.emit without its flush per record (called under self.lock).
        try:
            self.stream.write(self.format(record) + self.terminator)
            if record.levelno >= logging.WARNING:
                self.stream.flush()
        except RecursionError:
            raise
        except Exception:  # logging's own policy: report, never raise
            self.handleError(record)

    def close(self) -> None:
        self._closing.set()
        self.acquire()
        try:
            if self.stream is not sys.stderr:  # closed once: lines after it (a late
                self.stream.close()  # thread) go to sys.stderr; close() flushes
                self.stream = sys.stderr
        finally:
            self.release()
            super().close()


def _setup_logging() -> logging.Handler | None:
    """INFO and above to stderr in ``LOG_FORMAT``, cheaply: a line per batch is on the
    worker's loop. Nothing changes if the handler's module configured logging itself."""
    if logging.root.handlers:
        return None
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
    else:
        handler = _BufferedStderrHandler()
    handler.setFormatter(_SecondFormatter(LOG_FORMAT))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    # The format shows neither caller, thread nor process: not looked up per record (the
    # logging docs' "Optimization" switches; about 2.5 us a line).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    return handler


def load_handler(spec: str) -> Handler:
    """``package.module:function`` -> the function (the current directory is importable,
    as with ``python -m``)."""
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise UsageProblem(f"handler must be MODULE:FUNCTION, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UsageProblem(f"cannot import {module_name!r}: {error}") from error
    function = getattr(module, function_name, None)
    if not callable(function):
        raise UsageProblem(f"{module_name!r} has no function {function_name!r}")
    return cast(Handler, function)


@click.command(name="worker")
@click.argument("handler", metavar="MODULE:FUNCTION")
@click.option(
    "--job-type", "job_types", multiple=True, required=True,
    help="Job type to work on (repeat for several).",
)  # fmt: skip
@click.option(
    "--batch-size", type=click.IntRange(1, 1000),
    help="Jobs claimed per batch.  [default: 10, or --concurrency if larger]",
)  # fmt: skip
@click.option(
    "--concurrency", type=click.IntRange(1, 256), default=1, show_default=True,
    help="Jobs run at once (threads in this process).",
)  # fmt: skip
@click.option(
    "--stall-timeout", type=click.FloatRange(0.1, 86400), default=300.0, show_default=True,
    help="Seconds without a heartbeat after which the upkeep leader re-queues a job.",
)  # fmt: skip
@click.option(
    "--retention", type=click.FloatRange(0.001, 36500), default=7.0, show_default=True,
    help="Days finished jobs are kept before the upkeep leader prunes them.",
)  # fmt: skip
@click.option(
    "--poll-interval", type=click.FloatRange(0.01, 3600), default=5.0, show_default=True,
    help="Seconds between polls when no notification wakes the worker.",
)  # fmt: skip
@click.option(
    "--no-listen", is_flag=True,
    help="Poll only (behind a transaction-mode pooler, where LISTEN does not work).",
)  # fmt: skip
@click.option(
    "--no-maintenance", is_flag=True,
    help="Take no part in the upkeep election (schedule run_queue_upkeep instead).",
)  # fmt: skip
@_database_options
def worker_command(
    handler: str,
    *,
    job_types: tuple[str, ...],
    batch_size: int | None,
    concurrency: int,
    stall_timeout: float,
    retention: float,
    poll_interval: float,
    no_listen: bool,
    no_maintenance: bool,
    dsn: str | None,
    schema: str,
) -> None:
    """Run HANDLER (called with each claimed job) on jobs of the given types until
    SIGTERM or Ctrl-C: the job in hand finishes, claimed jobs not started go back to
    the queue (a second signal releases the job in hand too)."""
    function = load_handler(handler)
    log_handler = _setup_logging()
    worker = Worker(
        _dsn(dsn),
        job_types,
        function,
        schema=schema,
        batch_size=batch_size or max(10, concurrency),
        concurrency=concurrency,
        poll_interval=poll_interval,
        listen=not no_listen,
        maintenance=not no_maintenance,
        stall_timeout=timedelta(seconds=stall_timeout),
        retention=timedelta(days=retention),
    )
    try:
        worker.run()
    finally:
        if log_handler:
            log_handler.flush()  # before any error line cli.main writes
    if worker.abandoned and concurrency > 1:
        # Handlers still running on pool threads were released; do not wait for them.
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    return [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (headers, *rows)
    ]


def stats_report(
    health: list[dict[str, Any]], funnel: list[dict[str, Any]], limits: list[dict[str, Any]]
) -> list[str]:
    queue_rows = [
        [
            row["job_type"], row["status"], str(row["job_count"]),
            monitor.age(row["oldest_pending_age"]), monitor.age(row["oldest_heartbeat_age"]),
            str(row["stalled_jobs"]), str(row["failed_last_hour"]),
        ]
        for row in health
    ]  # fmt: skip
    funnel_rows = [
        [
            row["channel"], *(str(row[k]) for k in FUNNEL_COLUMNS),
            "-" if row["delivery_rate"] is None else f"{row['delivery_rate']}%",
        ]
        for row in funnel
    ]  # fmt: skip
    return [
        "queue (finished jobs: last 24 h)",
        *_table(QUEUE_HEADERS, queue_rows),
        "",
        "delivery funnel, last 24 h",
        *_table(["channel", *FUNNEL_COLUMNS, "delivery_rate"], funnel_rows),
        "",
        "rate limits (rate: starts per second over about the last minute)",
        *_table(LIMIT_HEADERS, [[_cell(row[k]) for k in LIMIT_COLUMNS] for row in limits]),
    ]


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


LIMIT_COLUMNS = (
    "limit_key", "max_per_second", "burst", "max_concurrent", "paused_until", "tokens",
    "backlog", "running", "current_rate",
)  # fmt: skip
LIMIT_HEADERS = [
    "limit_key", "limit_per_s", "burst", "cap", "paused_until", "tokens", "backlog", "running",
    "rate",
]  # fmt: skip


QUEUE_HEADERS = [
    "job_type", "status", "jobs", "oldest_pending", "oldest_heartbeat", "stalled", "failed_1h",
]  # fmt: skip
FUNNEL_COLUMNS = ("total_sent", "sent", "delivered", "opened", "clicked", "failed")


@click.command(name="stats")
@click.option("--json", "as_json", is_flag=True, help="One JSON document (for scripts).")
@_database_options
def stats_command(as_json: bool, dsn: str | None, schema: str) -> None:
    """Show the queue per job type and status, the 24-hour delivery funnel per channel and
    each rate-limit key's limit, backlog and current rate."""
    with psycopg.connect(_dsn(dsn), autocommit=True) as conn:
        health = monitor.queue_health(conn, schema)
        funnel = monitor.funnel(conn, schema, "24 hours")
        limits = monitor.limits(conn, schema)
    if as_json:
        click.echo(json.dumps({"queue": health, "funnel_24h": funnel, "limits": limits}, indent=2))
        return
    for line in stats_report(health, funnel, limits):
        click.echo(line)


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@click.command(name="serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True)
@click.option(
    "--token", envvar="NOTIFY_SQL_CONSOLE_TOKEN",
    help="Require Authorization: Bearer TOKEN (needed to bind another host) "
    "[env: NOTIFY_SQL_CONSOLE_TOKEN]",
)  # fmt: skip
@click.option(
    "--allow-actions", is_flag=True,
    help="Enable retry / cancel buttons (POST with a CSRF token); the DSN's role then "
    "needs service_role.",
)  # fmt: skip
@_database_options
def serve_command(
    *, host: str, port: int, token: str | None, allow_actions: bool, dsn: str | None, schema: str
) -> None:
    """Serve the operator console: overview, jobs, deliveries, traces, /metrics, /healthz."""
    if host not in LOCAL_HOSTS and not token:
        raise UsageProblem(f"refusing to serve on {host} without --token")
    if token is not None and len(token) < 16:
        raise UsageProblem("--token must be at least 16 characters")
    try:
        import uvicorn  # noqa: PLC0415 - the console's dependencies are an extra

        from notify_sql.console import Settings, create_app  # noqa: PLC0415
    except ImportError as error:
        raise UsageProblem(
            f"the console needs its extra: pip install 'notify-sql[console]' ({error})"
        ) from error
    settings = Settings(_dsn(dsn), schema, token=token, allow_actions=allow_actions)
    uvicorn.run(
        create_app(settings), host=host, port=port, log_level="info",
        timeout_graceful_shutdown=2, access_log=False,
    )  # fmt: skip


def register(group: click.Group) -> None:
    for command in (worker_command, stats_command, serve_command):
        group.add_command(command)
