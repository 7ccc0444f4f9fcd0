"""The SQL files: versioned migrations and one-file-per-function definitions.

The files ship inside the wheel (``notify_sql/sql``); in a checkout they are read from
the repository's ``sql/`` folder.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from notify_sql.errors import MigrationError

SCHEMA_PLACEHOLDER = "@schema@"
INTERNAL_GROUP = "internal"
# Public functions that a migration creates rather than a function file, and the group
# whose wrapper class they belong to; every other migration-made function is internal.
MIGRATION_FUNCTION_GROUPS = {
    "rebuild_delivery_funnel_rollup": "analytics",
    "rebuild_delivery_status_rollup": "analytics",
}
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_FUNCTION_NAME = re.compile(r"^([a-z_][a-z0-9_]*)\.sql$")
_GRANT_LINE = re.compile(r"^\s*GRANT\s+EXECUTE\s+ON\s+FUNCTION\s.+;\s*$", re.IGNORECASE)
_TRANSACTIONLESS = re.compile(r"\b(CONCURRENTLY|VACUUM)\b", re.IGNORECASE)


def validate_schema(schema: str) -> str:
    """Schema names are plain lowercase identifiers, so they never need quoting."""
    if not _SCHEMA_NAME.match(schema) or schema.startswith("pg_"):
        raise MigrationError(
            f"invalid schema name {schema!r}: use lowercase letters, digits and _ "
            "(at most 63, not starting with a digit or pg_)"
        )
    return schema


def sql_root() -> Path:
    packaged = Path(__file__).parent / "sql"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "sql"


def _strip_comments(text: str) -> str:
    return re.sub(r"--[^\n]*", "", text)


@dataclass(frozen=True)
class SqlFile:
    path: Path
    text: str

    @cached_property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def for_schema(self, schema: str, text: str | None = None) -> str:
        return (self.text if text is None else text).replace(SCHEMA_PLACEHOLDER, schema)


@dataclass(frozen=True)
class Migration(SqlFile):
    version: str
    name: str


@dataclass(frozen=True)
class FunctionFile(SqlFile):
    name: str
    group: str

    @property
    def internal(self) -> bool:
        """Helpers called by other functions, not part of the public API."""
        return self.group == INTERNAL_GROUP

    @cached_property
    def _lines(self) -> list[str]:
        return self.text.splitlines(keepends=True)

    @property
    def definition(self) -> str:
        """The file without its GRANT lines (applied before the grants are reset)."""
        return "".join(line for line in self._lines if not _GRANT_LINE.match(line))

    @property
    def grants(self) -> str:
        return "".join(line for line in self._lines if _GRANT_LINE.match(line))


def load_migrations(root: Path | None = None) -> list[Migration]:
    folder = (root or sql_root()) / "migrations"
    migrations = []
    for path in sorted(folder.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        text = path.read_text()
        if _TRANSACTIONLESS.search(_strip_comments(text)):
            raise MigrationError(
                f"{path.name}: CONCURRENTLY / VACUUM cannot run inside the install "
                "transaction; run such a step by hand and document it"
            )
        migrations.append(Migration(path, text, version=match.group(1), name=match.group(2)))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return migrations


def load_functions(root: Path | None = None) -> list[FunctionFile]:
    """Every ``functions/<group>/<name>.sql``, in name order.

    The group folder is documentation only (it decides the section in docs/rpc.md); the
    function's name is the file's name, so two files with one name are refused wherever
    they sit.
    """
    folder = (root or sql_root()) / "functions"
    functions: dict[str, FunctionFile] = {}
    for path in sorted(folder.rglob("*.sql")):
        relative = path.relative_to(folder)
        match = _FUNCTION_NAME.match(path.name)
        if not match or len(relative.parts) != 2:  # group/name.sql
            raise MigrationError(
                f"{relative}: function files are named <group>/<function_name>.sql"
            )
        function = FunctionFile(
            path, path.read_text(), name=match.group(1), group=relative.parts[0]
        )
        if function.name in functions:
            raise MigrationError(
                f"{relative}: function {function.name} is also defined in "
                f"{functions[function.name].path.relative_to(folder)}"
            )
        if not function.grants:
            raise MigrationError(
                f"{relative}: declares no GRANT EXECUTE; every function says who may call it"
            )
        functions[function.name] = function
    return sorted(functions.values(), key=lambda f: f.name)


def function_groups(root: Path | None = None) -> dict[str, str | None]:
    """Function name -> the group of its wrapper class; None for an internal helper.
    Functions no file defines (made by a migration) follow MIGRATION_FUNCTION_GROUPS."""
    groups: dict[str, str | None] = dict(MIGRATION_FUNCTION_GROUPS)
    for function in load_functions(root):
        groups[function.name] = None if function.internal else function.group
    return groups
