"""The runner's own SQL: named statements in ``sql/runner/*.sql``.

Each statement starts at a ``-- name: <name>`` line and runs to the next one (the
comment lines right under the header say what it is for). Values and names are filled
in with :mod:`psycopg.sql` (``{schema}`` as a Literal, ``{table}`` as an Identifier), so
the same statement is executed by ``migrate`` and written into rendered scripts, quoted
the same way both times. The folder sits beside ``functions/`` and ``migrations/``,
which the function and migration loaders read; neither looks into it.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from psycopg import sql

from notify_sql.errors import MigrationError
from notify_sql.sources import sql_root

_HEADER = re.compile(r"^-- name: ([a-z_]+)[ \t]*$", re.MULTILINE)


def parse(text: str, origin: str = "<text>") -> dict[str, str]:
    """``{name: statement}`` from a file of named statements. The comment lines right
    under a header document the statement in the file and are not part of it (rendered
    scripts would repeat them once per function); a final ``;`` is dropped."""
    parts = _HEADER.split(text)
    statements: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in statements:
            raise MigrationError(f"{origin}: statement {name} is defined twice")
        lines = body.strip().splitlines()
        while lines and lines[0].startswith("--"):
            lines.pop(0)
        statements[name] = "\n".join(lines).strip().removesuffix(";")
    return statements


@cache
def statements(root: Path | None = None) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted(((root or sql_root()) / "runner").glob("*.sql")):
        for name, text in parse(path.read_text(), path.name).items():
            if name in found:
                raise MigrationError(f"{path.name}: statement {name} is defined in two files")
            found[name] = text
    return found


def query(statement: str, /, **params: sql.Composable) -> sql.Composed:
    """The named statement with its placeholders filled in."""
    return sql.SQL(statements()[statement]).format(**params)


def script(statement: str, /, **params: sql.Composable) -> str:
    """The statement as text for a rendered script, ending with ``;`` and a newline."""
    return query(statement, **params).as_string(None) + ";\n"
