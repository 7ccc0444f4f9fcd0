"""The runner's own SQL (sql/runner/*.sql): named statements, checked like the rest.

The statements hold placeholders filled in with psycopg.sql, so the gates run over
them rendered: plpgsql_check over every DO block (wrapped in a temporary function,
since it checks functions), squawk over the DDL a run executes before any migration.
"""

from __future__ import annotations

import re
import string
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from notify_sql.errors import MigrationError
from notify_sql.migrator import owner_sql, prelude_sql
from notify_sql.queries import parse, query, statements
from notify_sql.sources import load_functions, load_migrations, sql_root
from notify_sql.throwaway import ThrowawayPostgres
from tests.security.test_security import ROOT, _plpgsql_check_findings, _squawk

SAMPLES: dict[str, sql.Composable] = {
    "roles": sql.Literal(["service_role", "anon"]),
    "schema_name": sql.Literal("notify"),
    "name": sql.Literal("queue_stats"),
    "names": sql.Literal(["queue_stats"]),
}
_DO_BLOCK = re.compile(r"^DO \$(\w+)\$\n(.*)\n\$\1\$$", re.DOTALL)


def do_blocks() -> dict[str, tuple[str, str]]:
    """statement name -> (dollar tag, PL/pgSQL body) of every DO statement."""
    blocks = {}
    for name, text in statements().items():
        if not text.startswith("DO "):
            continue
        fields = {field for _, field, _, _ in string.Formatter().parse(text) if field}
        rendered = query(name, **{field: SAMPLES[field] for field in fields}).as_string(None)
        match = _DO_BLOCK.match(rendered)
        assert match, f"{name}: a DO statement is one block"
        blocks[name] = (match[1], match[2])
    return blocks


def test_named_statements_parse_and_document_themselves() -> None:
    parsed = parse("-- name: one\n-- what it does\nSELECT 1;\n\n-- name: two\nSELECT 2;\n")
    assert parsed == {"one": "SELECT 1", "two": "SELECT 2"}
    with pytest.raises(MigrationError, match="twice"):
        parse("-- name: one\nSELECT 1;\n-- name: one\nSELECT 2;\n")
    assert {"lock", "become_owner", "catalog_snapshot", "record_catalog"} <= statements().keys()


def test_runner_files_are_neither_functions_nor_migrations() -> None:
    runner = {p.resolve() for p in (sql_root() / "runner").glob("*.sql")}
    assert runner
    loaded = {f.path.resolve() for f in load_functions()} | {
        m.path.resolve() for m in load_migrations()
    }
    assert runner & loaded == set()


def test_the_do_blocks_pass_plpgsql_check(
    db: psycopg.Connection[Any], pg_server: ThrowawayPostgres
) -> None:
    """Each DO body becomes a function in the install schema, where the security gate
    runs plpgsql_check over every PL/pgSQL function."""
    blocks = do_blocks()
    assert set(blocks) == {"create_roles", "drop_routines", "revoke_routines", "final_check"}
    for name, (tag, body) in blocks.items():
        db.execute(
            f"CREATE FUNCTION notify.runner_{name}() RETURNS void LANGUAGE plpgsql "
            f"SET search_path = pg_catalog, pg_temp AS ${tag}$\n{body}\n${tag}$"
        )
    assert _plpgsql_check_findings(db, pg_server) == []


def test_the_runner_ddl_passes_squawk(tmp_path: Path) -> None:
    (tmp_path / "runner_notify.sql").write_text(prelude_sql("notify") + owner_sql("notify"))
    (tmp_path / "runner_public.sql").write_text(prelude_sql("public") + owner_sql("public"))
    result = subprocess.run(
        [_squawk(), "--config", str(ROOT / ".squawk.toml"), "--reporter", "gcc",
         *sorted(str(p) for p in tmp_path.glob("*.sql"))],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
