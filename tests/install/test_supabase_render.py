"""``notify-sql render --supabase``: timestamped migration files for ``supabase db push``.

The files are applied with psql the way the Supabase CLI applies them: each file once,
in name order, followed in the same session by a history insert into a table the
notify-sql owner role cannot write (so a file that leaves the role switched fails).
Both ways the CLI may send a file are covered: statement by statement (no transaction
block) and wrapped in one transaction.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from notify_sql.errors import MigrationError
from notify_sql.migrator import OWNER_ROLE, inspect, migrate
from notify_sql.sources import load_functions, load_migrations, sql_root
from notify_sql.supabase import render_supabase
from notify_sql.throwaway import ThrowawayPostgres

SCHEMA = "public"
SUPABASE_FILE = re.compile(r"^\d{14}_notify_sql_(\d{4}_[a-z0-9_]+|functions)\.sql$")
HISTORY = "supabase_migrations.schema_migrations"
TRANSACTION_MODES = ["statement_by_statement", "one_transaction"]


@pytest.fixture
def psql(pg_server: ThrowawayPostgres) -> Path:
    return pg_server.bindir / "psql"


def make_supabase_like(dsn: str) -> None:
    """The CLI's history table, and Supabase's default privileges: every new function in
    public executable by anon and authenticated (here also for the owner role, so the
    files must revoke what they did not declare)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA supabase_migrations")
        conn.execute(f"CREATE TABLE {HISTORY} (version text PRIMARY KEY, name text NOT NULL)")
        for role in ("anon", "authenticated", "service_role", OWNER_ROLE):
            with suppress(psycopg.errors.DuplicateObject):  # roles are server-wide
                conn.execute(f"CREATE ROLE {role} NOLOGIN")
        for creator in ("postgres", OWNER_ROLE):
            conn.execute(
                f"ALTER DEFAULT PRIVILEGES FOR ROLE {creator} IN SCHEMA public"
                " GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role"
            )


def push(psql: Path, dsn: str, files: list[Path], mode: str) -> None:
    """What ``supabase db push`` does with pending files: each one, then its history row."""
    for path in files:
        version, _, name = path.stem.partition("_")
        command = [str(psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", str(path),
                   "-c", f"INSERT INTO {HISTORY} VALUES ('{version}', '{name}')"]  # fmt: skip
        if mode == "one_transaction":
            command.append("--single-transaction")
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{path.name}: {result.stderr}"


def rendered_from(path: Path) -> str:
    match = SUPABASE_FILE.match(path.name)
    assert match, path.name
    return match[1]


def history(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(f"SELECT version || '_' || name FROM {HISTORY} ORDER BY 1")
        return [f"{row[0]}.sql" for row in rows]


def assert_converged(dsn: str, root: Path | None = None) -> None:
    assert inspect(dsn, SCHEMA, root).drift == []
    assert migrate(dsn, SCHEMA, root=root) == []


def not_owned_by_owner_role(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT c.oid::regclass::text FROM pg_class c WHERE c.relnamespace = %s::regnamespace"
            " AND c.relowner <> %s::regrole"
            " UNION ALL SELECT p.oid::regprocedure::text FROM pg_proc p"
            " WHERE p.pronamespace = %s::regnamespace AND p.proowner <> %s::regrole",
            (SCHEMA, OWNER_ROLE, SCHEMA, OWNER_ROLE),
        )
        return [row[0] for row in rows]


@pytest.mark.parametrize("mode", TRANSACTION_MODES)
def test_rendered_files_install_everything_owned_by_the_owner_role(
    tmp_path: Path, empty_dsn: str, psql: Path, mode: str
) -> None:
    files = render_supabase(tmp_path, SCHEMA)
    names = [path.name for path in files]
    assert names == sorted(names) == sorted(p.name for p in tmp_path.iterdir())
    assert [rendered_from(p) for p in files] == [
        *(m.path.stem for m in load_migrations()),
        "functions",
    ]

    make_supabase_like(empty_dsn)
    push(psql, empty_dsn, files, mode)
    assert history(empty_dsn) == names
    assert_converged(empty_dsn)
    assert not_owned_by_owner_role(empty_dsn) == []


def test_rendering_again_writes_nothing(tmp_path: Path) -> None:
    first = render_supabase(tmp_path)
    assert first
    assert render_supabase(tmp_path) == []
    assert sorted(tmp_path.iterdir()) == first


def make_upgrade(root: Path) -> tuple[str, str]:
    """Adds a migration, changes one function's comment and deletes another function
    that no other file mentions. Returns the changed and the deleted function name."""
    next_version = int(load_migrations(root)[-1].version) + 1
    (root / "migrations" / f"{next_version:04d}_upgrade_probe.sql").write_text(
        "CREATE TABLE upgrade_probe (id integer PRIMARY KEY);\n"
    )
    functions = load_functions(root)
    deleted = next(
        f for f in functions if not any(f.name in g.text for g in functions if g is not f)
    )
    deleted.path.unlink()
    changed = next(f for f in functions if f is not deleted and " IS '" in f.text)
    changed.path.write_text(changed.text.replace(" IS '", " IS 'Upgraded. ", 1))
    return changed.name, deleted.name


@pytest.mark.parametrize("mode", TRANSACTION_MODES)
def test_upgrade_appends_new_files_only_and_converges(
    tmp_path: Path, empty_dsn: str, psql: Path, mode: str
) -> None:
    root = tmp_path / "sql"
    shutil.copytree(sql_root(), root)
    folder = tmp_path / "supabase" / "migrations"
    make_supabase_like(empty_dsn)
    first = render_supabase(folder, SCHEMA, root)
    push(psql, empty_dsn, first, mode)

    changed, deleted = make_upgrade(root)
    assert render_supabase(folder, SCHEMA, root, now=datetime(2000, 1, 1, tzinfo=UTC)) != []
    second = sorted(set(folder.iterdir()) - set(first))
    assert [p.name for p in second] == sorted(p.name for p in folder.iterdir())[len(first) :]
    assert [rendered_from(p) for p in second] == [load_migrations(root)[-1].path.stem, "functions"]
    assert render_supabase(folder, SCHEMA, root) == []

    push(psql, empty_dsn, second, mode)
    assert_converged(empty_dsn, root)
    with psycopg.connect(empty_dsn) as conn:
        comment = conn.execute(
            "SELECT obj_description(p.oid, 'pg_proc') FROM pg_proc p"
            " WHERE p.pronamespace = 'public'::regnamespace AND p.proname = %s",
            (changed,),
        ).fetchone()
        assert comment is not None and comment[0].startswith("Upgraded. ")
        assert conn.execute(
            "SELECT count(*) FROM pg_proc WHERE proname = %s", (deleted,)
        ).fetchone() == (0,)


def test_new_files_sort_after_every_file_in_the_folder(tmp_path: Path) -> None:
    (tmp_path / "20300101000000_app_tables.sql").write_text("SELECT 1;\n")
    files = render_supabase(tmp_path, now=datetime(2026, 1, 1, tzinfo=UTC))
    assert files[0].name.startswith("20300101000001_notify_sql_0001_")
    assert [p.name[:14] for p in files] == [
        f"2030010100{index // 60:02d}{index % 60:02d}" for index in range(1, len(files) + 1)
    ]


def test_a_folder_that_cannot_be_extended_append_only_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "sql"
    shutil.copytree(sql_root(), root)
    folder = tmp_path / "migrations"
    first = render_supabase(folder, SCHEMA, root)
    with pytest.raises(MigrationError, match="render with --schema public"):
        render_supabase(folder, "notify", root)

    migration = load_migrations(root)[0]
    migration.path.write_text(migration.text + "\n-- edited after release\n")
    with pytest.raises(MigrationError, match="changed after it was rendered"):
        render_supabase(folder, SCHEMA, root)
    migration.path.unlink()
    with pytest.raises(MigrationError, match="unknown to these files"):
        render_supabase(folder, SCHEMA, root)
    assert sorted(folder.iterdir()) == first


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "notify_sql", *args],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


def test_cli_renders_into_a_folder_then_reports_nothing_to_do(tmp_path: Path) -> None:
    first = run_cli("render", "--supabase", str(tmp_path))
    assert first.returncode == 0, first.stderr
    written = sorted(p.name for p in tmp_path.iterdir())
    assert first.stdout.splitlines() == [f"wrote {tmp_path / name}" for name in written]
    assert "for schema public," in (tmp_path / written[0]).read_text()

    again = run_cli("render", "--supabase", str(tmp_path))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"nothing to write: {tmp_path} is up to date"

    other_schema = run_cli("render", "--supabase", str(tmp_path), "--schema", "notify")
    assert other_schema.returncode == 2
    assert other_schema.stderr.count("\n") == 1
    assert "render with --schema public" in other_schema.stderr
