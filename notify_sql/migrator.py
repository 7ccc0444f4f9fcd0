"""The install runner: migrations once, functions whenever the catalog differs.

Everything a run does happens in ONE transaction that starts by taking a
transaction-scoped advisory lock, so concurrent runs queue up behind each other, a
failure anywhere leaves the database exactly as it was, and the lock works behind a
transaction-mode pooler and cannot be left behind by a crashed run. Applied migrations
are recorded (with a checksum of their text) in the same transaction that applies them.

Whether a function is up to date is decided by the catalog, not by a recorded
checksum: every function file is applied into a scratch schema inside a savepoint,
and its definition, grants and comment are compared with the installed ones. So a
body edited by hand, a lost grant or an extra overload all count as drift, and the
next ``migrate`` repairs them.

``render`` builds the same statements without a database, so ``psql -f`` of its
output and ``migrate`` produce the same catalog.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from notify_sql.errors import MigrationError
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


@dataclass
class State:
    """What a database holds compared with the files."""

    applied: list[str] = field(default_factory=list)
    pending: list[Migration] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)
    changed: list[FunctionDrift] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    @property
    def drift(self) -> list[str]:
        lines = [f"migration {m.version}_{m.name} is not applied" for m in self.pending]
        lines += [f"function {name} is missing" for name in self.missing]
        lines += [f"function {d.name}: {problem}" for d in self.changed for problem in d.problems]
        lines += [f"function {name} is installed but has no file" for name in self.unexpected]
        return lines


# --- SQL building blocks (shared by migrate, dry-run and render) ---------------------


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def prelude_sql(schema: str) -> str:
    """Lock, roles and schema; runs as the connecting user, before anything is read."""
    role_checks = "\n".join(
        f"  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN\n"
        f"    CREATE ROLE {role} NOLOGIN;\n  END IF;"
        for role in (*ROLES, OWNER_ROLE, MONITOR_ROLE)
    )
    return (
        f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK_KEY});\n"
        f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}';\n"
        f"DO $roles$\nBEGIN\n{role_checks}\nEND\n$roles$;\n"
        f"GRANT {OWNER_ROLE} TO CURRENT_USER;\n"
        f"CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {OWNER_ROLE};\n"
        + (
            # Supabase's public schema belongs to the platform: only add what we need.
            f"GRANT USAGE, CREATE ON SCHEMA public TO {OWNER_ROLE};\n"
            if schema == "public"
            else f"REVOKE ALL ON SCHEMA {schema} FROM PUBLIC, anon;\n"
        )
        + f"GRANT USAGE ON SCHEMA {schema} TO service_role, authenticated;\n"
    )


def _set(session: bool) -> str:
    """``SET LOCAL`` inside the runner's transaction; plain ``SET`` for scripts that may
    run without one (Supabase migration files), which must reset what they set."""
    return "SET" if session else "SET LOCAL"


def owner_sql(schema: str, session: bool = False) -> str:
    """From here on the run acts as the owner role, so it owns everything it creates,
    and new functions of that role are never executable by PUBLIC by default."""
    tables = []
    for table, columns in (
        (MIGRATIONS_TABLE, "version text PRIMARY KEY, name text NOT NULL"),
        (FUNCTIONS_TABLE, "name text PRIMARY KEY"),
    ):
        tables.append(
            f"CREATE TABLE IF NOT EXISTS {schema}.{table} (\n"
            f"  {columns},\n  checksum text NOT NULL,\n"
            f"  applied_at timestamptz NOT NULL DEFAULT now()\n);\n"
            f"ALTER TABLE {schema}.{table} ENABLE ROW LEVEL SECURITY;\n"
            f"REVOKE ALL ON {schema}.{table} FROM PUBLIC, {', '.join(ROLES)};\n"
        )
    return (
        f"{_set(session)} ROLE {OWNER_ROLE};\n"
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER_ROLE} REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;\n"
        + "".join(tables)
    )


def _routines_of(schema: str, name: str) -> str:
    """A query listing the full signature of every overload of ``schema.name``."""
    return (
        "SELECT format('%I.%I(%s)', n.nspname, p.proname, "
        "oidvectortypes(p.proargtypes)) "
        "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        f"WHERE n.nspname = {_literal(schema)} AND p.proname = {_literal(name)} "
        "AND p.prokind IN ('f', 'p')"
    )


def drop_routines_sql(schema: str, name: str) -> str:
    """Drops every overload (no CASCADE: a dependent object fails the install loudly)."""
    return (
        f"DO $drop$\nDECLARE signature text;\nBEGIN\n"
        f"  FOR signature IN {_routines_of(schema, name)} LOOP\n"
        f"    EXECUTE 'DROP ROUTINE ' || signature;\n  END LOOP;\nEND\n$drop$;\n"
    )


def revoke_all_sql(schema: str, name: str) -> str:
    """Revokes EXECUTE from PUBLIC and from every grantee but the owner, whatever
    default privileges (Supabase's included) added when the function was created."""
    return (
        f"DO $revoke$\nDECLARE signature text; grantee text;\nBEGIN\n"
        f"  FOR signature IN {_routines_of(schema, name)} LOOP\n"
        f"    EXECUTE 'REVOKE ALL ON ROUTINE ' || signature || ' FROM PUBLIC';\n"
        f"    FOR grantee IN SELECT DISTINCT a.grantee::regrole::text\n"
        f"        FROM pg_proc p, aclexplode(p.proacl) a\n"
        f"        WHERE p.oid = signature::regprocedure\n"
        f"          AND a.grantee <> 0 AND a.grantee <> p.proowner LOOP\n"
        f"      EXECUTE 'REVOKE ALL ON ROUTINE ' || signature || ' FROM ' || grantee;\n"
        f"    END LOOP;\n  END LOOP;\nEND\n$revoke$;\n"
    )


def function_sql(schema: str, function: FunctionFile) -> str:
    # Bodies are not validated at creation so that files apply in any order (a SQL
    # function may call one whose file sorts later); plpgsql_check and the tests
    # validate them instead.
    return (
        f"-- function {function.name}\n"
        "SET LOCAL check_function_bodies = off;\n"
        + drop_routines_sql(schema, function.name)
        + function.for_schema(schema, function.definition).rstrip()
        + "\n"
        + revoke_all_sql(schema, function.name)
        + function.for_schema(schema, function.grants)
    )


def _record_function_sql(schema: str, function: FunctionFile) -> str:
    return (
        f"INSERT INTO {schema}.{FUNCTIONS_TABLE} (name, checksum) VALUES "
        f"({_literal(function.name)}, {_literal(function.checksum)})\n"
        f"ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now();\n"
    )


def migration_sql(schema: str, migration: Migration, session: bool = False) -> str:
    return (
        f"-- migration {migration.version}_{migration.name}\n"
        f"{_set(session)} search_path = {schema}, pg_temp;\n"
        + migration.for_schema(schema).rstrip()
        + "\n"
        + f"INSERT INTO {schema}.{MIGRATIONS_TABLE} (version, name, checksum) VALUES "
        f"({_literal(migration.version)}, {_literal(migration.name)}, "
        f"{_literal(migration.checksum)});\n"
        "RESET search_path;\n"
    )


def _function_step(schema: str, function: FunctionFile) -> Step:
    return Step(
        "function",
        function.name,
        function_sql(schema, function) + _record_function_sql(schema, function),
    )


def _drop_step(schema: str, name: str) -> Step:
    return Step(
        "drop",
        name,
        drop_routines_sql(schema, name)
        + f"DELETE FROM {schema}.{FUNCTIONS_TABLE} WHERE name = {_literal(name)};\n",
    )


def check_sql(schema: str, functions: Sequence[FunctionFile]) -> str:
    """Refuses to commit an install whose functions lack a pinned search_path or are
    executable by PUBLIC or anon (guards against a file that forgot its SET clause)."""
    names = "ARRAY[" + ", ".join(_literal(f.name) for f in functions) + "]::text[]"
    return (
        "DO $check$\nDECLARE offender text;\nBEGIN\n"
        "  SELECT string_agg(p.oid::regprocedure::text, ', ') INTO offender\n"
        "  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace\n"
        f"  WHERE n.nspname = {_literal(schema)} AND p.proname = ANY ({names})\n"
        "    AND (NOT EXISTS (SELECT FROM unnest(p.proconfig) c WHERE c LIKE 'search\\_path=%')\n"
        "         OR has_function_privilege('anon', p.oid, 'EXECUTE')\n"
        "         OR has_function_privilege('public', p.oid, 'EXECUTE'));\n"
        "  IF offender IS NOT NULL THEN\n"
        "    RAISE EXCEPTION 'without a pinned search_path, or executable by PUBLIC or anon: %',"
        " offender;\n"
        "  END IF;\nEND\n$check$;\n"
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
        "COMMIT;\n",
    ]
    return "\n".join(parts)


# --- Reading the database --------------------------------------------------------------

_CATALOG_QUERY = """
SELECT p.proname,
       pg_get_functiondef(p.oid),
       coalesce(obj_description(p.oid, 'pg_proc'), ''),
       ARRAY(SELECT CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END
                    || ':' || a.privilege_type
             FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
             WHERE a.grantee <> p.proowner
             ORDER BY 1)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = %s AND p.proname = ANY(%s)
ORDER BY p.proname, p.oid
"""

Catalog = dict[str, list[tuple[str, str, list[str]]]]


def _catalog(cur: psycopg.Cursor[Any], schema: str, names: list[str]) -> Catalog:
    found: Catalog = {name: [] for name in names}
    for name, definition, comment, acl in cur.execute(_CATALOG_QUERY, (schema, names)):
        found[name].append((definition, comment, acl))
    return found


def _expected_catalog(
    cur: psycopg.Cursor[Any], schema: str, functions: list[FunctionFile]
) -> Catalog:
    """Applies every function file into a scratch schema and reads back what it makes,
    with the scratch name swapped for the install schema. Rolled back afterwards."""
    cur.execute("SAVEPOINT notify_sql_expected")
    try:
        cur.execute(f"DROP SCHEMA IF EXISTS {SCRATCH_SCHEMA} CASCADE")
        cur.execute(f"CREATE SCHEMA {SCRATCH_SCHEMA}")
        for function in functions:
            cur.execute(function_sql(SCRATCH_SCHEMA, function))
        scratch = _catalog(cur, SCRATCH_SCHEMA, [f.name for f in functions])
    finally:
        cur.execute("ROLLBACK TO SAVEPOINT notify_sql_expected")
    return {
        name: [(d.replace(SCRATCH_SCHEMA, schema), c.replace(SCRATCH_SCHEMA, schema), a)
               for d, c, a in rows]
        for name, rows in scratch.items()
    }  # fmt: skip


def _exists(cur: psycopg.Cursor[Any], schema: str, table: str) -> bool:
    row = cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.{table}",)).fetchone()
    return bool(row and row[0])


def read_state(cur: psycopg.Cursor[Any], schema: str, root: Path | None = None) -> State:
    """Compares the database with the files. Runs inside the caller's transaction."""
    migrations = load_migrations(root)
    functions = load_functions(root)
    state = State()

    applied: dict[str, str] = {}
    recorded_functions: list[str] = []
    if _exists(cur, schema, MIGRATIONS_TABLE):
        rows = cur.execute(
            f"SELECT version, name, checksum FROM {schema}.{MIGRATIONS_TABLE} ORDER BY version"
        ).fetchall()
        applied = {version: checksum for version, _, checksum in rows}
        state.applied = [f"{version}_{name}" for version, name, _ in rows]
    if _exists(cur, schema, FUNCTIONS_TABLE):
        recorded_functions = [
            name for (name,) in cur.execute(f"SELECT name FROM {schema}.{FUNCTIONS_TABLE}")
        ]

    known = {m.version: m for m in migrations}
    for version, checksum in applied.items():
        migration = known.get(version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {version} that these files do not know "
                "(installed by a newer notify-sql?)"
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"migration {version}_{migration.name} was edited after it was applied "
                "(checksum differs); put the change in a new migration instead"
            )
    state.pending = [m for m in migrations if m.version not in applied]
    if state.pending and applied and state.pending[0].version < max(applied):
        raise MigrationError(
            f"migration {state.pending[0].version}_{state.pending[0].name} sorts before "
            "migrations already applied; give it a higher number"
        )

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
        want_def, want_comment, want_acl = expected[name][0]
        if not any(row[0] == want_def for row in installed):
            problems.append("definition differs from its file")
        if not any(row[1] == want_comment for row in installed):
            problems.append("comment differs from its file")
        acls = [row[2] for row in installed]
        if want_acl not in acls:
            problems.append(f"grants are {acls[0]}, the file declares {want_acl}")
        if problems:
            state.changed.append(FunctionDrift(name, problems))
        else:
            state.up_to_date.append(name)
    state.unexpected = sorted(set(recorded_functions) - set(names))
    return state


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
            cur.execute(owner_sql(schema))
            steps = plan_steps(state, schema, root)
            for step in steps:
                stage = f"{step.kind} {step.name}"
                cur.execute(step.sql)
            stage = "final checks"
            if steps:
                cur.execute(check_sql(schema, load_functions(root)))
        except psycopg.Error as error:
            raise MigrationError(f"{stage} failed: {_one_line(error)}") from error
        if not dry_run:
            cur.connection.commit()
    return steps


def inspect(dsn: str, schema: str = "notify", root: Path | None = None) -> State:
    """Reads the state without changing anything (the scratch work is rolled back)."""
    schema = validate_schema(schema)
    with _transaction(dsn) as cur:
        try:
            return read_state(cur, schema, root)
        except psycopg.Error as error:
            raise MigrationError(f"cannot read the database: {_one_line(error)}") from error
