"""The install as Supabase CLI migrations (``supabase/migrations``, ``supabase db push``).

The Supabase CLI applies each ``<timestamp>_<name>.sql`` file of its migrations folder
once, in name order, and records its version. So the rendering is append-only: a file
already in the folder is never renamed or rewritten (Supabase would not run it again),
an upgrade adds files whose timestamps sort after every file already there, and the
function files, being idempotent, are re-emitted as one new file only when what they
install changed since the last one rendered into that folder.

Each file is self-contained (lock, roles, schema, owner role, then its migration or the
functions) and works whether or not the CLI wraps it in a transaction: depending on its
version, the CLI sends a file as a pipeline that PostgreSQL does not treat as a
transaction block (``SET LOCAL`` is then ignored with a warning) or brackets it in
BEGIN/COMMIT. The role and search_path are therefore switched at session level and reset
at the end of every file, before the CLI writes its own history row, and no file holds
BEGIN/COMMIT of its own (inside the CLI's transaction they would commit it early).
Without a wrapping transaction a failed file can leave part of itself applied; every
statement the runner emits is safe to re-run, and ``notify-sql verify`` shows the rest.

The SQL itself is the runner's (``notify_sql.migrator``), so ``migrate`` run afterwards
against the same database finds nothing to do.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from notify_sql.errors import MigrationError
from notify_sql.migrator import (
    State,
    check_sql,
    migration_sql,
    owner_sql,
    plan_steps,
    prelude_sql,
    record_catalog_sql,
)
from notify_sql.sources import Migration, load_functions, load_migrations, validate_schema

SUPABASE_SCHEMA = "public"
TIMESTAMP_FORMAT = "%Y%m%d%H%M%S"
FUNCTIONS_SUFFIX = "_notify_sql_functions.sql"

_VERSIONED_FILE = re.compile(r"^(\d{14})_.*\.sql$")
_RENDERED_MIGRATION = re.compile(r"^\d{14}_notify_sql_\d{4}_[a-z0-9_]+\.sql$")
_FUNCTIONS_FILE = re.compile(rf".*{re.escape(FUNCTIONS_SUFFIX)}$")
_MIGRATION_HEADER = re.compile(
    r"^-- notify-sql migration (?P<version>\d{4})_(?P<name>[a-z0-9_]+) "
    r"for schema (?P<schema>[a-z0-9_]+), source sha256 (?P<checksum>[0-9a-f]{64})$"
)
_FUNCTIONS_HEADER = re.compile(
    r"^-- notify-sql functions for schema (?P<schema>[a-z0-9_]+), "
    r"sha256 (?P<fingerprint>[0-9a-f]{64}):$",
    re.MULTILINE,  # for $ at the end of the first line
)
_MANIFEST_LINE = re.compile(r"^-- +function (?P<name>[a-z_][a-z0-9_]*)$", re.MULTILINE)

_ABOUT = (
    "-- Rendered by `notify-sql render --supabase`; apply with `supabase db push`.\n"
    "-- Never edit or rename this file: Supabase applies each migration file once.\n"
)
_RESET = "RESET ROLE;\n"


def _as_owner(schema: str) -> str:
    """Lock, roles and schema as the deploying user; then act as the owner role."""
    return prelude_sql(schema) + owner_sql(schema, session=True)


def migration_file_text(schema: str, migration: Migration, about: str = _ABOUT) -> str:
    body = migration_sql(schema, migration, session=True)
    return (
        f"-- notify-sql migration {migration.version}_{migration.name} for schema {schema}, "
        f"source sha256 {migration.checksum}\n"
        + about
        + "\n"
        + _as_owner(schema)
        + "\n"
        + body
        + record_catalog_sql(schema, session=True)
        + _RESET
    )


def _functions_body(schema: str, root: Path | None, removed: list[str]) -> str:
    functions = load_functions(root)
    state = State(missing=[f.name for f in functions], unexpected=removed)
    return (
        _as_owner(schema)
        # Files run in name order and a SQL-language body may call a function created
        # further down; the runner's own SET LOCAL does not last without a transaction.
        + "SET check_function_bodies = off;\n\n"
        + "\n".join(step.sql for step in plan_steps(state, schema, root))
        + "\n"
        + check_sql(schema, functions)
        + record_catalog_sql(schema, session=True)
        + "RESET check_function_bodies;\n"
        + _RESET
    )


def functions_file_text(
    schema: str, root: Path | None, previous: list[str], about: str = _ABOUT
) -> tuple[str, str]:
    """Every function (dropped, created, revoked, granted, recorded), then the runner's
    final checks; functions in ``previous`` (installed by the last functions file
    rendered into the folder) that no longer have a file are dropped.

    Returns the text and its fingerprint: the digest of what installs the current
    functions, which leaves out those drops (so rendering again after an upgrade that
    only removed a function finds nothing new to write)."""
    names = [f.name for f in load_functions(root)]
    removed = sorted(set(previous) - set(names))
    fingerprint = hashlib.sha256(_functions_body(schema, root, []).encode()).hexdigest()
    manifest = "".join(f"--   function {name}\n" for name in names)
    text = (
        f"-- notify-sql functions for schema {schema}, sha256 {fingerprint}:\n{manifest}"
        + about
        + "\n"
        + _functions_body(schema, root, removed)
    )
    return text, fingerprint


@dataclass(frozen=True)
class _Folder:
    """What a Supabase migrations folder already holds."""

    latest_version: str | None
    rendered: dict[str, tuple[Path, dict[str, str]]]  # migration version -> file, header
    last_functions: Path | None


def _read_folder(
    directory: Path,
    versioned: re.Pattern[str] = _VERSIONED_FILE,
    migration_file: re.Pattern[str] = _RENDERED_MIGRATION,
    functions_file: re.Pattern[str] = _FUNCTIONS_FILE,
) -> _Folder:
    """``versioned`` matches every file whose first group is its place in the order;
    ``migration_file`` the names of rendered migrations (whose headers are read)."""
    files = sorted(p for p in directory.glob("*.sql") if p.is_file()) if directory.is_dir() else []
    versions = [m.group(1) for p in files if (m := versioned.match(p.name))]
    rendered = {}
    for path in files:
        if not migration_file.match(path.name):
            continue
        header = _MIGRATION_HEADER.match(path.read_text().partition("\n")[0])
        if header is None:
            raise MigrationError(f"{path}: not a notify-sql migration header; was it edited?")
        rendered[header["version"]] = (path, header.groupdict())
    functions = [p for p in files if functions_file.match(p.name)]
    return _Folder(max(versions, default=None), rendered, functions[-1] if functions else None)


def _check_rendered(folder: _Folder, schema: str, migrations: list[Migration]) -> None:
    """Refuses a folder that these files cannot extend append-only."""
    known = {m.version: m for m in migrations}
    for version, (path, header) in sorted(folder.rendered.items()):
        _same_schema(path, header["schema"], schema)
        migration = known.get(version)
        if migration is None:
            raise MigrationError(
                f"{path.name}: migration {version} is unknown to these files "
                "(rendered by a newer notify-sql?)"
            )
        if migration.checksum != header["checksum"]:
            raise MigrationError(
                f"{path.name}: migration {version}_{migration.name} changed after it was "
                "rendered; put the change in a new migration instead"
            )
    new = [m for m in migrations if m.version not in folder.rendered]
    if new and folder.rendered and new[0].version < max(folder.rendered):
        raise MigrationError(
            f"migration {new[0].version}_{new[0].name} sorts before migrations already "
            "rendered; give it a higher number"
        )


def _same_schema(path: Path, installs_into: str, schema: str) -> None:
    if installs_into != schema:
        raise MigrationError(
            f"{path.name} installs into schema {installs_into}, not {schema}: "
            f"render with --schema {installs_into}"
        )


def _last_functions(
    folder: _Folder, schema: str, about: str = _ABOUT
) -> tuple[str | None, list[str]]:
    """The fingerprint of the last functions file rendered into the folder and the
    functions it installed (None and nothing when there is none)."""
    path = folder.last_functions
    if path is None:
        return None, []
    text = path.read_text()
    header = _FUNCTIONS_HEADER.match(text)
    if header is None:
        raise MigrationError(f"{path}: not a notify-sql functions header; was it edited?")
    _same_schema(path, header["schema"], schema)
    return header["fingerprint"], _MANIFEST_LINE.findall(text.partition(about)[0])


def _timestamps(after: str | None, now: datetime, count: int) -> list[str]:
    """``count`` consecutive one-second timestamps, none earlier than ``now`` and all
    later than ``after`` (so they sort after every file already in the folder)."""
    start = now.astimezone(UTC).replace(microsecond=0, tzinfo=None)
    if after is not None:
        try:
            start = max(start, datetime.strptime(after, TIMESTAMP_FORMAT) + timedelta(seconds=1))
        except ValueError as error:
            raise MigrationError(f"migration version {after} is not a timestamp") from error
    return [(start + timedelta(seconds=i)).strftime(TIMESTAMP_FORMAT) for i in range(count)]


def render_supabase(
    directory: Path,
    schema: str = SUPABASE_SCHEMA,
    root: Path | None = None,
    now: datetime | None = None,
) -> list[Path]:
    """Writes into ``directory`` what it lacks; returns the new files (empty: up to date)."""
    schema = validate_schema(schema)
    migrations = load_migrations(root)
    folder = _read_folder(directory)
    _check_rendered(folder, schema, migrations)

    pending = [
        (f"notify_sql_{m.version}_{m.name}", migration_file_text(schema, m))
        for m in migrations
        if m.version not in folder.rendered
    ]
    last_fingerprint, previous = _last_functions(folder, schema)
    functions, fingerprint = functions_file_text(schema, root, previous)
    if fingerprint != last_fingerprint:
        pending.append((FUNCTIONS_SUFFIX.removeprefix("_").removesuffix(".sql"), functions))

    stamps = _timestamps(folder.latest_version, now or datetime.now(UTC), len(pending))
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for stamp, (name, text) in zip(stamps, pending, strict=True):
        path = directory / f"{stamp}_{name}.sql"
        path.write_text(text)
        written.append(path)
    return written
