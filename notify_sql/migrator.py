"""The install runner: migrations once, functions whenever the catalog differs.

Everything a run does happens in ONE transaction that starts by taking a
transaction-scoped advisory lock, so concurrent runs queue up behind each other, a
failure anywhere leaves the database exactly as it was, and the lock works behind a
transaction-mode pooler and cannot be left behind by a crashed run. Applied migrations
are recorded (with a checksum of their text) in the same transaction that applies them.

For ``migrate``, whether a function is up to date is decided by the catalog, not by
a recorded checksum: every function file is applied into a scratch schema inside a
savepoint, and its definition, grants and comment are compared with the installed
ones. So a body edited by hand, a lost grant or an extra overload all count as drift,
and ``migrate`` repairs them.

Every install ends by recording a snapshot of the catalog it produced (every object it
owns, normalized); ``status`` and ``verify`` compare the live catalog with it and the
files with the recorded checksums, read-only. Drift other than in a function file's
function makes ``migrate`` refuse (the files cannot say whether it was deliberate).

The SQL itself is in ``sql/runner/*.sql`` as named statements (``notify_sql.queries``);
``render`` builds the same statements without a database, so ``psql -f`` of its output
and ``migrate`` produce the same catalog.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from notify_sql.errors import MigrationError
from notify_sql.queries import query, script
from notify_sql.sources import (
    FunctionFile,
    Migration,
    load_functions,
    load_migrations,
    validate_schema,
)

ROLES = ("service_role", "authenticated", "anon")
# Owns every object of every install (NOLOGIN): objects never belong to whoever happened
# to run the deploy, and SECURITY DEFINER functions run with no more than this role.
OWNER_ROLE = "notify_sql_owner"
# Arbitrary constant: one lock per database serialises every notify-sql install in it
# (role creation is database-cluster wide, so installs into two schemas must queue too).
# Read-only, NOLOGIN: what the operator console (notify-sql serve) and the stats need
# (0009 and the GRANT lines of the functions they call). Grant it to a login role.
MONITOR_ROLE = "notify_sql_monitor"
ADVISORY_LOCK_KEY = 4_715_902_336_187_005
# Set once the advisory lock is held: a migration that needs a table lock held by a long
# transaction fails fast (and can be retried) instead of queueing every worker behind it.
LOCK_TIMEOUT = "5s"
MIGRATIONS_TABLE = "notify_sql_migrations"
FUNCTIONS_TABLE = "notify_sql_functions"
# The catalog as the last install left it (one row per object the install owns):
# `verify` compares the live catalog with it, read-only.
CATALOG_TABLE = "notify_sql_catalog"
SCRATCH_SCHEMA = "notify_sql_scratch"


@dataclass(frozen=True)
class Step:
    """One unit of the install, with the SQL that performs it."""

    kind: str  # "setup" | "migration" | "function" | "drop" | "check"
    name: str
    sql: str


@dataclass
class FunctionDrift:
    name: str
    problems: list[str]


@dataclass(frozen=True)
class CatalogRow:
    """One object of the install as ``catalog_snapshot`` (sql/runner/catalog.sql) reads it."""

    kind: str
    identity: str
    definition: dict[str, Any]


_PRESENCE = ("was dropped", "was added")


@dataclass(frozen=True)
class CatalogDrift:
    kind: str
    identity: str
    problem: str

    @property
    def function_name(self) -> str | None:
        return self.identity.partition("(")[0] if self.kind == "function" else None

    def __str__(self) -> str:
        sep = " " if self.problem in _PRESENCE else ": "
        return f"{self.kind} {self.identity}{sep}{self.problem}"


@dataclass
class State:
    """What a database holds compared with the files."""

    applied: list[str] = field(default_factory=list)
    pending: list[Migration] = field(default_factory=list)
    history: list[str] = field(default_factory=list)  # edited / unknown / misordered
    up_to_date: list[str] = field(default_factory=list)
    changed: list[FunctionDrift] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    catalog: list[CatalogDrift] = field(default_factory=list)
    recorded: bool = False  # a catalog snapshot was recorded by the last install

    @property
    def drift(self) -> list[str]:
        lines = list(self.history)
        lines += [f"migration {m.version}_{m.name} is not applied" for m in self.pending]
        lines += [f"function {name} is missing" for name in self.missing]
        lines += [f"function {d.name}: {problem}" for d in self.changed for problem in d.problems]
        lines += [f"function {name} is installed but has no file" for name in self.unexpected]
        lines += [str(d) for d in self.catalog]
        if not self.recorded and self.applied:
            lines.append("no catalog snapshot is recorded (installed by an older notify-sql): "
                         "run notify-sql migrate to record one")  # fmt: skip
        return lines


# --- SQL building blocks (shared by migrate, dry-run and render) ---------------------


def _names(schema: str, session: bool = False) -> dict[str, sql.Composable]:
    """What the runner's statements (sql/runner/install.sql) may refer to."""
    return {
        "schema": sql.Identifier(schema),
        "schema_name": sql.Literal(schema),
        "owner": sql.Identifier(OWNER_ROLE),
        "migrations": sql.Identifier(schema, MIGRATIONS_TABLE),
        "functions": sql.Identifier(schema, FUNCTIONS_TABLE),
        "catalog": sql.Identifier(schema, CATALOG_TABLE),
        # SET LOCAL inside the runner's transaction; plain SET for scripts that may run
        # without one (Supabase migration files), which must reset what they set.
        "set": sql.SQL("SET" if session else "SET LOCAL"),
    }


def _script(statement: str, schema: str, /, session: bool = False, **values: str) -> str:
    """A statement of sql/runner/install.sql; ``values`` are filled in as literals."""
    literals = {key: sql.Literal(value) for key, value in values.items()}
    return script(statement, **_names(schema, session), **literals)


def prelude_sql(schema: str) -> str:
    """Lock, roles and schema; runs as the connecting user, before anything is read."""
    return (
        script(
            "lock",
            lock_key=sql.Literal(ADVISORY_LOCK_KEY),
            lock_timeout=sql.Literal(LOCK_TIMEOUT),
        )
        + script("create_roles", roles=sql.Literal([*ROLES, OWNER_ROLE, MONITOR_ROLE]))
        + _script("create_schema", schema)
        + _script("shared_schema_access" if schema == "public" else "own_schema_access", schema)
        + _script("schema_usage", schema)
    )


def owner_sql(schema: str, session: bool = False) -> str:
    """From here on the run acts as the owner role (and the runner's tables exist)."""
    return _script("become_owner", schema, session) + "".join(
        script("runner_table_access", table=sql.Identifier(schema, table))
        for table in (MIGRATIONS_TABLE, FUNCTIONS_TABLE, CATALOG_TABLE)
    )


def drop_routines_sql(schema: str, name: str) -> str:
    return _script("drop_routines", schema, name=name)


def function_sql(schema: str, function: FunctionFile) -> str:
    return (
        f"-- function {function.name}\n"
        + _script("defer_body_checks", schema)
        + drop_routines_sql(schema, function.name)
        + function.for_schema(schema, function.definition).rstrip()
        + "\n"
        + _script("revoke_routines", schema, name=function.name)
        + function.for_schema(schema, function.grants)
    )


def migration_sql(schema: str, migration: Migration, session: bool = False) -> str:
    return (
        f"-- migration {migration.version}_{migration.name}\n"
        + _script("use_schema", schema, session)
        + migration.for_schema(schema).rstrip()
        + "\n"
        + _script(
            "record_migration",
            schema,
            version=migration.version,
            name=migration.name,
            checksum=migration.checksum,
        )
        + script("reset_search_path")
    )


def _function_step(schema: str, function: FunctionFile) -> Step:
    record = _script("record_function", schema, name=function.name, checksum=function.checksum)
    return Step("function", function.name, function_sql(schema, function) + record)


def _drop_step(schema: str, name: str) -> Step:
    forget = _script("forget_function", schema, name=name)
    return Step("drop", name, drop_routines_sql(schema, name) + forget)


def check_sql(schema: str, functions: Sequence[FunctionFile]) -> str:
    """Refuses to commit an install whose functions lack a pinned search_path or are
    executable by PUBLIC or anon."""
    names = sql.Literal([f.name for f in functions])
    return script("final_check", schema_name=sql.Literal(schema), names=names)


def _snapshot(schema: str) -> sql.Composed:
    return query(
        "catalog_snapshot",
        schema=sql.Literal(schema),
        owner=sql.Literal(OWNER_ROLE),
        roles=sql.SQL(", ").join(map(sql.Literal, (*ROLES, OWNER_ROLE))),
        runner_tables=sql.SQL(", ").join(
            map(sql.Literal, (MIGRATIONS_TABLE, FUNCTIONS_TABLE, CATALOG_TABLE))
        ),
    )


def record_catalog_sql(schema: str, session: bool = False) -> str:
    """Records the catalog the install just produced; the last step of every install,
    in its transaction. Names are read qualified (search_path = pg_catalog)."""
    return (
        script("use_schema", set=_names(schema, session)["set"], schema=sql.SQL("pg_catalog"))
        + script(
            "record_catalog",
            table=sql.Identifier(schema, CATALOG_TABLE),
            snapshot=_snapshot(schema),
        )
        + script("reset_search_path")
    )


def render(schema: str, root: Path | None = None) -> str:
    """One script installing the current version from scratch."""
    schema = validate_schema(schema)
    functions = load_functions(root)
    parts = [
        f"-- notify-sql install script for schema {schema}\n"
        "-- Apply with: psql -v ON_ERROR_STOP=1 -f <this file>\n",
        "BEGIN;\n",
        prelude_sql(schema),
        owner_sql(schema),
        *(migration_sql(schema, m) for m in load_migrations(root)),
        *(_function_step(schema, f).sql for f in functions),
        check_sql(schema, functions),
        record_catalog_sql(schema),
        "COMMIT;\n",
    ]
    return "\n".join(parts)


# --- Reading the database --------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """A row of the runner's own tables: an applied migration or an installed function."""

    name: str
    checksum: str
    version: str = ""


@dataclass(frozen=True)
class Found:
    found: bool


@dataclass(frozen=True)
class InstalledFunction:
    """One overload as ``installed_functions`` (sql/runner/catalog.sql) reads it."""

    name: str
    definition: str
    comment: str
    grants: list[str]


Catalog = dict[str, list[InstalledFunction]]


def _catalog(cur: psycopg.Cursor[Any], schema: str, names: list[str]) -> Catalog:
    found: Catalog = {name: [] for name in names}
    with cur.connection.cursor(row_factory=class_row(InstalledFunction)) as rows:
        for row in rows.execute(query("installed_functions"), {"schema": schema, "names": names}):
            found[row.name].append(row)
    return found


def _expected_catalog(
    cur: psycopg.Cursor[Any], schema: str, functions: list[FunctionFile]
) -> Catalog:
    """Applies every function file into a scratch schema and reads back what it makes,
    with the scratch name swapped for the install schema. Rolled back afterwards."""
    cur.execute("SAVEPOINT notify_sql_expected")
    try:
        cur.execute(query("scratch_schema", scratch=sql.Identifier(SCRATCH_SCHEMA)))
        for function in functions:
            cur.execute(function_sql(SCRATCH_SCHEMA, function))
        scratch = _catalog(cur, SCRATCH_SCHEMA, [f.name for f in functions])
    finally:
        cur.execute("ROLLBACK TO SAVEPOINT notify_sql_expected")
    return {
        name: [InstalledFunction(f.name, f.definition.replace(SCRATCH_SCHEMA, schema),
                                 f.comment.replace(SCRATCH_SCHEMA, schema), f.grants)
               for f in rows]
        for name, rows in scratch.items()
    }  # fmt: skip


def _exists(cur: psycopg.Cursor[Any], schema: str, table: str) -> bool:
    with cur.connection.cursor(row_factory=class_row(Found)) as rows:
        row = rows.execute(query("table_exists"), {"table": f"{schema}.{table}"}).fetchone()
    return bool(row and row.found)


def _read_history(cur: psycopg.Cursor[Any], schema: str, state: State, root: Path | None) -> None:
    """Applied and pending migrations; an applied one edited since, unknown to these
    files or sorting after a pending one is a line in ``state.history``."""
    migrations = load_migrations(root)
    applied: dict[str, str] = {}
    if _exists(cur, schema, MIGRATIONS_TABLE):
        with cur.connection.cursor(row_factory=class_row(Recorded)) as read:
            rows = read.execute(query("applied_migrations", **_names(schema))).fetchall()
        applied = {row.version: row.checksum for row in rows}
        state.applied = [f"{row.version}_{row.name}" for row in rows]
    known = {m.version: m for m in migrations}
    for version, checksum in applied.items():
        migration = known.get(version)
        if migration is None:
            state.history.append(
                f"migration {version} is applied but these files do not know it "
                "(installed by a newer notify-sql?)"
            )
        elif migration.checksum != checksum:
            state.history.append(
                f"migration {version}_{migration.name} was edited after it was applied "
                "(checksum differs); put the change in a new migration instead"
            )
    state.pending = [m for m in migrations if m.version not in applied]
    if state.pending and applied and state.pending[0].version < max(applied):
        state.history.append(
            f"migration {state.pending[0].version}_{state.pending[0].name} sorts before "
            "migrations already applied; give it a higher number"
        )


@contextmanager
def _qualified_names(cur: psycopg.Cursor[Any]) -> Iterator[None]:
    """search_path = pg_catalog for the duration: the catalog functions then qualify
    every name, as they did when the snapshot was recorded."""
    row = cur.execute(query("current_search_path")).fetchone()
    cur.execute(query("set_search_path"), {"path": "pg_catalog, pg_temp"})
    try:
        yield
    finally:
        cur.execute(query("set_search_path"), {"path": row[0] if row else ""})


def _describe(key: str, was: Any, now: Any) -> str:
    if isinstance(was, list) or isinstance(now, list):
        lost = [x for x in was or [] if x not in (now or [])]
        gained = [x for x in now or [] if x not in (was or [])]
        parts = [f"lost {', '.join(map(str, lost))}"] if lost else []
        parts += [f"gained {', '.join(map(str, gained))}"] if gained else []
        return f"{key} {' and '.join(parts) or 'reordered'}"
    was_text, now_text = json.dumps(was), json.dumps(now)
    if len(was_text) + len(now_text) <= 80:
        return f"{key} was {was_text}, now {now_text}"
    return f"{key} differs from what the install left"


def _read_catalog(cur: psycopg.Cursor[Any], schema: str, state: State) -> None:
    """Compares the live catalog with the snapshot the last install recorded."""
    if not _exists(cur, schema, CATALOG_TABLE):
        return
    with cur.connection.cursor(row_factory=class_row(CatalogRow)) as rows:
        recorded = {
            (r.kind, r.identity): r.definition
            for r in rows.execute(
                query("recorded_catalog", table=sql.Identifier(schema, CATALOG_TABLE))
            )
        }
        with _qualified_names(cur):
            live = {(r.kind, r.identity): r.definition for r in rows.execute(_snapshot(schema))}
    state.recorded = bool(recorded)
    if not recorded:
        return
    for key in sorted(recorded.keys() | live.keys()):
        was, now = recorded.get(key), live.get(key)
        if was == now:
            continue
        if now is None or was is None:
            problem = _PRESENCE[0] if now is None else _PRESENCE[1]
        else:
            problem = "; ".join(
                _describe(k, was.get(k), now.get(k))
                for k in sorted(was.keys() | now.keys())
                if was.get(k) != now.get(k)
            )
        state.catalog.append(CatalogDrift(*key, problem))  # fmt: skip


def _recorded_functions(cur: psycopg.Cursor[Any], schema: str) -> dict[str, str]:
    """name -> checksum of the function files installed last (empty before any)."""
    if not _exists(cur, schema, FUNCTIONS_TABLE):
        return {}
    with cur.connection.cursor(row_factory=class_row(Recorded)) as rows:
        return {
            r.name: r.checksum for r in rows.execute(query("recorded_functions", **_names(schema)))
        }


def _read_recorded_functions(
    cur: psycopg.Cursor[Any], schema: str, state: State, functions: list[FunctionFile]
) -> None:
    """Functions by the checksum recorded when each was installed (read-only)."""
    recorded = _recorded_functions(cur, schema)
    touched = {d.function_name for d in state.catalog}
    for function in functions:
        if function.name not in recorded:
            state.missing.append(function.name)
        elif recorded[function.name] != function.checksum:
            state.changed.append(
                FunctionDrift(function.name, ["file changed since it was installed"])
            )
        elif function.name in touched:
            state.changed.append(FunctionDrift(function.name, []))  # lines: state.catalog
        else:
            state.up_to_date.append(function.name)
    state.unexpected = sorted(set(recorded) - {f.name for f in functions})


def _compare_functions(
    cur: psycopg.Cursor[Any], schema: str, state: State, functions: list[FunctionFile]
) -> None:
    """Functions by what their files produce in a scratch schema (needs CREATE)."""
    names = [f.name for f in functions]
    expected = _expected_catalog(cur, schema, functions)
    actual = _catalog(cur, schema, names)
    for name in names:
        installed = actual[name]
        if not installed:
            state.missing.append(name)
            continue
        problems = []
        if len(installed) > 1:
            problems.append(f"{len(installed)} overloads installed, the file defines one")
        want = expected[name][0]
        if not any(f.definition == want.definition for f in installed):
            problems.append("definition differs from its file")
        if not any(f.comment == want.comment for f in installed):
            problems.append("comment differs from its file")
        grants = [f.grants for f in installed]
        if want.grants not in grants:
            problems.append(f"grants are {grants[0]}, the file declares {want.grants}")
        if problems:
            state.changed.append(FunctionDrift(name, problems))
        else:
            state.up_to_date.append(name)
    state.unexpected = sorted(_recorded_functions(cur, schema).keys() - set(names))


def read_state(
    cur: psycopg.Cursor[Any], schema: str, root: Path | None = None, scratch: bool = True
) -> State:
    """Compares the database with the files. Runs inside the caller's transaction.

    With ``scratch`` (what ``migrate`` does) functions are compared with what their
    files produce in a scratch schema; without it (``status``, ``verify``: read-only,
    no CREATE privilege needed) with the checksums recorded when they were installed,
    the catalog snapshot telling whether they were changed since."""
    state = State()
    _read_history(cur, schema, state, root)
    _read_catalog(cur, schema, state)
    functions = load_functions(root)
    if scratch:
        _compare_functions(cur, schema, state, functions)
    else:
        _read_recorded_functions(cur, schema, state, functions)
    return state


def refusal(state: State, root: Path | None = None) -> str | None:
    """Why ``migrate`` must not run, in one line (None: it may). Function drift is
    repaired from the files; any other drift from the recorded catalog is the user's
    to resolve, since the files cannot tell whether it was meant."""
    if state.history:
        return state.history[0]
    names = {f.name for f in load_functions(root)}
    other = [str(d) for d in state.catalog if d.function_name not in names]
    if not other:
        return None
    more = f" (and {len(other) - 1} more)" if len(other) > 1 else ""
    return (
        f"the schema changed since it was installed: {other[0]}{more}; "
        "`notify-sql verify` lists every change: undo it, then migrate again"
    )


# --- Running ---------------------------------------------------------------------------


@contextmanager
def _transaction(dsn: str) -> Iterator[psycopg.Cursor[Any]]:
    """A cursor in one transaction that is rolled back unless the caller commits."""
    try:
        conn = psycopg.connect(dsn, autocommit=False, application_name="notify-sql")
    except psycopg.Error as error:
        raise MigrationError(f"cannot connect: {_one_line(error)}") from error
    with conn:
        try:
            with conn.cursor() as cur:
                yield cur
        finally:
            conn.rollback()


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def plan_steps(state: State, schema: str, root: Path | None = None) -> list[Step]:
    functions = {f.name: f for f in load_functions(root)}
    stale = [d.name for d in state.changed] + state.missing
    steps = [Step("migration", f"{m.version}_{m.name}", migration_sql(schema, m))
             for m in state.pending]  # fmt: skip
    steps += [_function_step(schema, functions[name]) for name in sorted(stale)]
    steps += [_drop_step(schema, name) for name in state.unexpected]
    return steps


def migrate(
    dsn: str, schema: str = "notify", dry_run: bool = False, root: Path | None = None
) -> list[Step]:
    """Applies what is pending; returns the steps (empty when nothing was to do).

    With ``dry_run`` the steps are executed and then rolled back, so the SQL shown is
    exactly what would run and is known to apply.
    """
    schema = validate_schema(schema)
    with _transaction(dsn) as cur:
        stage = "setup"
        try:
            cur.execute(prelude_sql(schema))
            state = read_state(cur, schema, root)
            refused = refusal(state, root)
            if refused:
                raise MigrationError(f"refused: {refused}")
            cur.execute(owner_sql(schema))
            steps = plan_steps(state, schema, root)
            for step in steps:
                stage = f"{step.kind} {step.name}"
                cur.execute(step.sql)
            stage = "final checks"
            if steps:
                cur.execute(check_sql(schema, load_functions(root)))
            if steps or not state.recorded:
                stage = "recording the catalog"
                cur.execute(record_catalog_sql(schema))
        except psycopg.Error as error:
            raise MigrationError(f"{stage} failed: {_one_line(error)}") from error
        if not dry_run:
            cur.connection.commit()
    return steps


def inspect(dsn: str, schema: str = "notify", root: Path | None = None) -> State:
    """Reads the state in a read-only transaction (needs no CREATE privilege)."""
    schema = validate_schema(schema)
    with _transaction(dsn) as cur:
        try:
            cur.execute("SET TRANSACTION READ ONLY")
            return read_state(cur, schema, root, scratch=False)
        except psycopg.Error as error:
            raise MigrationError(f"cannot read the database: {_one_line(error)}") from error
