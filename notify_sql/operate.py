"""Running and watching notify-sql: the ``worker``, ``stats`` and ``serve`` commands.

Registered on the ``notify-sql`` group by :mod:`notify_sql.cli`. Every failure the user
can cause ends as one line on stderr and exit code 2 (``cli.main`` does that).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from datetime import timedelta
from typing import cast

import click

from notify_sql.cli import UsageProblem, _database_options, _dsn
from notify_sql.worker import Handler, Worker

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


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
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stderr)
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
    worker.run()
    if worker.abandoned and concurrency > 1:
        # Handlers still running on pool threads were released; do not wait for them.
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)


def register(group: click.Group) -> None:
    for command in (worker_command,):
        group.add_command(command)
