"""The install runner: once-only migrations, function replacement, grants, atomicity."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from notify_sql.errors import MigrationError
from notify_sql.migrator import inspect, migrate, render
from notify_sql.sources import load_functions, load_migrations
from notify_sql.throwaway import ThrowawayPostgres

FUNCTION_TEMPLATE = """-- {name}: test function
CREATE FUNCTION @schema@.{name}(p_x integer)
RETURNS {returns}
LANGUAGE sql
SET search_path = @schema@, pg_temp
AS $$ SELECT {body} $$;

GRANT EXECUTE ON FUNCTION @schema@.{name}(integer) TO service_role, authenticated;
"""


def write_tree(root: Path, migrations: dict[str, str], functions: dict[str, str]) -> Path:
    (root / "migrations").mkdir(parents=True, exist_ok=True)
    for name, text in migrations.items():
        (root / "migrations" / f"{name}.sql").write_text(text)
    for name, text in functions.items():
        (root / "functions" / "test").mkdir(parents=True, exist_ok=True)
        (root / "functions" / "test" / f"{name}.sql").write_text(text)
    return root


def add_one(returns: str = "integer", body: str = "p_x + 1") -> str:
    return FUNCTION_TEMPLATE.format(name="add_one", returns=returns, body=body)


def fetch(dsn: str, query: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


def acl_of(dsn: str, name: str) -> list[tuple[Any, ...]]:
    return fetch(
        dsn,
        "SELECT p.oid::regprocedure::text, p.proacl::text FROM pg_proc p "
        "WHERE p.proname = %s ORDER BY 1",
        name,
    )


CATALOG_SNAPSHOT = """
SELECT 'function', p.oid::regprocedure::text,
       pg_get_functiondef(p.oid) || coalesce(p.proacl::text, '') ||
       coalesce(obj_description(p.oid, 'pg_proc'), '')
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %(schema)s
UNION ALL
SELECT 'column', c.relname || '.' || a.attname,
       format_type(a.atttypid, a.atttypmod) || a.attnotnull::text ||
       coalesce(pg_get_expr(d.adbin, d.adrelid), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE n.nspname = %(schema)s
UNION ALL
SELECT 'relation', c.relname, c.relkind::text || coalesce(c.relacl::text, '') ||
       c.relrowsecurity::text || coalesce(pg_get_indexdef(c.oid), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %(schema)s
UNION ALL
SELECT 'policy', pol.polname || ' on ' || pol.polrelid::regclass::text,
       pol.polcmd::text || pg_get_expr(pol.polqual, pol.polrelid)
FROM pg_policy pol JOIN pg_class c ON c.oid = pol.polrelid
JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %(schema)s
UNION ALL
SELECT 'constraint', con.conname, pg_get_constraintdef(con.oid)
FROM pg_constraint con JOIN pg_namespace n ON n.oid = con.connamespace
WHERE n.nspname = %(schema)s
ORDER BY 1, 2
"""


def catalog(dsn: str, schema: str = "notify") -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(CATALOG_SNAPSHOT, {"schema": schema}).fetchall()


def test_migrate_installs_everything_into_an_empty_database(empty_dsn: str) -> None:
    steps = migrate(empty_dsn)
    assert [s.name for s in steps if s.kind == "migration"] == [
        f"{m.version}_{m.name}" for m in load_migrations()
    ]
    assert sorted(s.name for s in steps if s.kind == "function") == sorted(
        f.name for f in load_functions()
    )
    state = inspect(empty_dsn)
    assert state.drift == []
    assert len(state.up_to_date) == len(load_functions())
    roles = fetch(
        empty_dsn,
        "SELECT rolname, rolcanlogin FROM pg_roles "
        "WHERE rolname IN ('service_role', 'authenticated', 'anon') ORDER BY 1",
    )
    assert roles == [("anon", False), ("authenticated", False), ("service_role", False)]


def test_second_migrate_is_a_no_op(empty_dsn: str) -> None:
    migrate(empty_dsn)
    before = catalog(empty_dsn)
    assert migrate(empty_dsn) == []
    assert catalog(empty_dsn) == before


def test_four_concurrent_migrate_processes_do_the_work_once(empty_dsn: str) -> None:
    command = [sys.executable, "-m", "notify_sql", "migrate", "--dsn", empty_dsn]
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120) for p in processes]
    results = [(p.returncode, out, err) for p, (out, err) in zip(processes, outputs, strict=True)]
    assert [code for code, _, _ in results] == [0, 0, 0, 0], results
    workers_that_applied = [out for _, out, _ in results if "applied" in out]
    assert len(workers_that_applied) == 1
    assert sum(out.count("nothing to do") for _, out, _ in results) == 3
    recorded = fetch(
        empty_dsn, "SELECT count(*), count(DISTINCT version) FROM notify.notify_sql_migrations"
    )
    assert recorded == [(len(load_migrations()), len(load_migrations()))]
    assert inspect(empty_dsn).drift == []


def test_a_failing_migration_leaves_no_trace(
    tmp_path: Path, pg_server: ThrowawayPostgres, empty_dsn: str
) -> None:
    roles_before = fetch(empty_dsn, "SELECT rolname FROM pg_roles ORDER BY 1")
    root = write_tree(
        tmp_path,
        {
            "0001_tables": "CREATE TABLE things (id int);",
            "0002_broken": "CREATE TABLE more_things (id int);\nSELECT 1 / 0;",
        },
        {"add_one": add_one()},
    )
    with pytest.raises(MigrationError, match=r"0002_broken.*division by zero"):
        migrate(empty_dsn, "fresh", root=root)
    assert fetch(empty_dsn, "SELECT count(*) FROM pg_namespace WHERE nspname = 'fresh'") == [(0,)]
    assert fetch(empty_dsn, "SELECT rolname FROM pg_roles ORDER BY 1") == roles_before


def test_an_edited_applied_migration_is_refused(tmp_path: Path, empty_dsn: str) -> None:
    root = write_tree(
        tmp_path, {"0001_tables": "CREATE TABLE things (id int);"}, {"add_one": add_one()}
    )
    migrate(empty_dsn, "edited", root=root)
    (root / "migrations" / "0001_tables.sql").write_text("CREATE TABLE things (id bigint);")
    with pytest.raises(MigrationError, match="0001_tables was edited after it was applied"):
        migrate(empty_dsn, "edited", root=root)
    drift = inspect(empty_dsn, "edited", root=root).drift
    assert drift == [
        "migration 0001_tables was edited after it was applied (checksum differs); "
        "put the change in a new migration instead"
    ]


def test_a_changed_return_type_replaces_the_function_with_grants_intact(
    tmp_path: Path, empty_dsn: str
) -> None:
    root = write_tree(tmp_path, {}, {"add_one": add_one()})
    migrate(empty_dsn, "rt", root=root)
    acl_before = acl_of(empty_dsn, "add_one")
    assert "service_role=X" in acl_before[0][1] and "authenticated=X" in acl_before[0][1]

    write_tree(root, {}, {"add_one": add_one(returns="text", body="(p_x + 1)::text")})
    steps = migrate(empty_dsn, "rt", root=root)
    assert [s.name for s in steps] == ["add_one"]
    assert acl_of(empty_dsn, "add_one") == acl_before
    assert fetch(empty_dsn, "SELECT rt.add_one(41)") == [("42",)]
    assert inspect(empty_dsn, "rt", root=root).drift == []


def test_a_hand_made_overload_is_drift_and_the_next_migrate_drops_it(
    tmp_path: Path, empty_dsn: str
) -> None:
    root = write_tree(tmp_path, {}, {"add_one": add_one()})
    migrate(empty_dsn, "ov", root=root)
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION ov.add_one(p_x text) RETURNS text LANGUAGE sql AS $$ SELECT p_x $$"
        )
    drift = inspect(empty_dsn, "ov", root=root).drift
    assert drift == ["function add_one(p_x text) was added"]
    assert [s.name for s in migrate(empty_dsn, "ov", root=root)] == ["add_one"]
    assert [row[0] for row in acl_of(empty_dsn, "add_one")] == ["ov.add_one(integer)"]
    assert inspect(empty_dsn, "ov", root=root).drift == []


def test_a_body_edited_by_hand_or_a_lost_grant_is_drift(empty_dsn: str) -> None:
    migrate(empty_dsn)
    function = load_functions()[0]
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        signature = conn.execute(
            "SELECT oid::regprocedure::text FROM pg_proc WHERE proname = %s "
            "AND pronamespace = 'notify'::regnamespace",
            (function.name,),
        ).fetchone()
        assert signature is not None
        conn.execute(f"REVOKE ALL ON FUNCTION {signature[0]} FROM service_role")
        conn.execute(f"ALTER FUNCTION {signature[0]} RESET search_path")
    drift = inspect(empty_dsn).drift
    assert any("grants" in line for line in drift)
    assert any("definition differs" in line for line in drift)
    migrate(empty_dsn)
    assert inspect(empty_dsn).drift == []


def test_grants_added_by_default_privileges_are_removed(empty_dsn: str) -> None:
    """Supabase grants EXECUTE on every new function to anon and authenticated."""
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        migrate(empty_dsn, "creates_the_roles")
        conn.execute("ALTER DEFAULT PRIVILEGES GRANT EXECUTE ON FUNCTIONS TO anon, authenticated")
    migrate(empty_dsn)
    callable_by_anon = fetch(
        empty_dsn,
        "SELECT p.oid::regprocedure::text FROM pg_proc p "
        "WHERE p.pronamespace = 'notify'::regnamespace "
        "AND has_function_privilege('anon', p.oid, 'EXECUTE')",
    )
    assert callable_by_anon == []
    assert inspect(empty_dsn).drift == []


def test_a_function_removed_from_the_files_is_dropped(tmp_path: Path, empty_dsn: str) -> None:
    root = write_tree(
        tmp_path, {}, {"add_one": add_one(), "add_two": add_one().replace("add_one", "add_two")}
    )
    migrate(empty_dsn, "rm", root=root)
    (root / "functions" / "test" / "add_two.sql").unlink()
    assert inspect(empty_dsn, "rm", root=root).unexpected == ["add_two"]
    assert [(s.kind, s.name) for s in migrate(empty_dsn, "rm", root=root)] == [("drop", "add_two")]
    assert fetch(empty_dsn, "SELECT count(*) FROM pg_proc WHERE proname = 'add_two'") == [(0,)]


def test_two_schemas_hold_two_independent_installs(empty_dsn: str) -> None:
    migrate(empty_dsn, "notify")
    migrate(empty_dsn, "tenant_two")
    assert inspect(empty_dsn, "notify").drift == []
    assert inspect(empty_dsn, "tenant_two").drift == []
    names = {
        schema: [name for (name,) in fetch(
            empty_dsn,
            "SELECT proname::text FROM pg_proc WHERE pronamespace = %s::regnamespace ORDER BY 1",
            schema,
        )]
        for schema in ("notify", "tenant_two")
    }  # fmt: skip
    assert names["notify"] == names["tenant_two"]
    assert {f.name for f in load_functions()} <= set(names["notify"])


def test_render_applied_with_psql_gives_the_same_catalog_as_migrate(
    pg_server: ThrowawayPostgres, empty_dsn: str, tmp_path: Path
) -> None:
    migrate(empty_dsn)
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS rendered")
        conn.execute("CREATE DATABASE rendered")
    rendered_dsn = pg_server.dsn("rendered")
    script = tmp_path / "install.sql"
    script.write_text(render("notify"))
    result = subprocess.run(
        [
            str(pg_server.bindir / "psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-f",
            str(script),
            rendered_dsn,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert catalog(rendered_dsn) == catalog(empty_dsn)
    assert inspect(rendered_dsn).drift == []
    assert migrate(rendered_dsn) == []
