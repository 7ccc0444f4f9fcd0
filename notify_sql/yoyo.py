"""The install as yoyo-migrations files (``notify-sql render --yoyo DIR``).

For apps whose own migrations run through yoyo: each notify-sql migration becomes one
file, and the functions one more file whenever what installs them changed, each
declaring ``-- depends:`` on the file rendered before it, so yoyo applies them in the
runner's order whatever else the folder holds (the app's own files may depend on
them). yoyo applies a file once and identifies it by its name, so the rendering is
append-only: a file in the folder is never rewritten, an upgrade adds files numbered
after the last one.

yoyo runs all the statements of a SQL file in one transaction (PostgreSQL has
transactional DDL; the files never ask for ``-- transactional: false`` and hold no
BEGIN/COMMIT), so each file applies whole or not at all, its notify-sql records
included. yoyo marks the file applied in a second transaction of its own: after a crash
between the two, ``yoyo apply`` tries the file again and it fails, changing nothing (its
migration is already recorded); ``yoyo mark`` that file. The statements are the
runner's (via ``notify_sql.supabase``, which writes the same self-contained files for
the Supabase CLI), so ``notify-sql verify`` passes after ``yoyo apply`` and
``notify-sql migrate`` finds nothing to do.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from pathlib import Path

from notify_sql.sources import load_migrations, validate_schema
from notify_sql.supabase import (
    _check_rendered,
    _last_functions,
    _read_folder,
    functions_file_text,
    migration_file_text,
)

YOYO_SCHEMA = "notify"
_ABOUT = (
    "-- Rendered by `notify-sql render --yoyo`; apply with `yoyo apply`.\n"
    "-- Never edit or rename this file: yoyo applies each migration file once, by name.\n"
)
_ORDERED = re.compile(r"^notify_sql_(\d{3})_[a-z0-9_]+\.sql$")
_MIGRATION = re.compile(r"^notify_sql_\d{3}_\d{4}_[a-z0-9_]+\.sql$")
_FUNCTIONS = re.compile(r"^notify_sql_\d{3}_functions\.sql$")


def _depends(previous: str | None) -> str:
    """yoyo's dependency directive; it must sit in the file's leading comments."""
    return f"-- depends: {previous}\n" if previous else ""


def render_yoyo(directory: Path, schema: str = YOYO_SCHEMA, root: Path | None = None) -> list[Path]:
    """Writes into ``directory`` what it lacks; returns the new files (empty: up to date)."""
    schema = validate_schema(schema)
    migrations = load_migrations(root)
    folder = _read_folder(directory, _ORDERED, _MIGRATION, _FUNCTIONS)
    _check_rendered(folder, schema, migrations)

    # (name, text given the leading comments that end with its `-- depends:`)
    pending: list[tuple[str, Callable[[str], str]]] = [
        (f"{m.version}_{m.name}", partial(migration_file_text, schema, m))
        for m in migrations
        if m.version not in folder.rendered
    ]
    last_fingerprint, previous = _last_functions(folder, schema, _ABOUT)
    functions, fingerprint = functions_file_text(schema, root, previous, _ABOUT)
    if fingerprint != last_fingerprint:
        pending.append(("functions", partial(functions.replace, _ABOUT)))

    number = int(folder.latest_version or 0)
    last = max(
        (p.stem for p in directory.glob("notify_sql_*.sql") if _ORDERED.match(p.name)),
        default=None,
    )
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in pending:
        number += 1
        path = directory / f"notify_sql_{number:03d}_{name}.sql"
        path.write_text(text(_ABOUT + _depends(last)))
        written.append(path)
        last = path.stem
    return written
