"""Every function carries a COMMENT, and docs/rpc.md is the catalog's current reference."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg

from notify_sql.rpcdocs import REGENERATE, generate, split_top_level

SCHEMA = "notify"
RPC_DOCS = Path(__file__).parents[2] / "docs" / "rpc.md"


def test_every_installed_function_has_a_comment(db: psycopg.Connection[Any]) -> None:
    uncommented = [
        row[0]
        for row in db.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p"
            " WHERE p.pronamespace = %s::regnamespace"
            " AND coalesce(obj_description(p.oid, 'pg_proc'), '') = '' ORDER BY 1",
            (SCHEMA,),
        )
    ]
    assert not uncommented, f"add a COMMENT ON FUNCTION (guarantee + errors): {uncommented}"


def test_committed_rpc_reference_is_up_to_date(dsn: str) -> None:
    current = generate(dsn, SCHEMA)
    committed = RPC_DOCS.read_text() if RPC_DOCS.exists() else ""
    assert committed == current, f"docs/rpc.md is out of date: regenerate it with `{REGENERATE}`"


def test_reference_reflects_grants_security_and_comments(db: psycopg.Connection[Any]) -> None:
    db.execute("SET ROLE notify_sql_owner")
    db.execute(
        "GRANT EXECUTE ON FUNCTION notify.claim_pending_jobs(text[], integer) TO authenticated"
    )
    db.execute("ALTER FUNCTION notify.claim_pending_jobs(text[], integer) SECURITY DEFINER")
    db.execute("COMMENT ON FUNCTION notify.claim_pending_jobs(text[], integer) IS NULL")
    reference = generate(db.info.dsn, SCHEMA)
    section = reference.split("### claim_pending_jobs\n")[1].split("\n### ")[0]
    assert "p_batch_size integer DEFAULT 5" in section
    assert "- Executable by: `authenticated`, `service_role`\n" in section
    assert "- Security: definer;" in section
    assert "**No comment.**" in section


def test_argument_lists_split_only_at_top_level_commas() -> None:
    arguments = (
        "p_user_id uuid, p_allowed_statuses text[] DEFAULT ARRAY['pending'::text, 'a,b'::text],"
        " p_x numeric(10,2) DEFAULT NULL::numeric"
    )
    assert split_top_level(arguments) == [
        "p_user_id uuid",
        "p_allowed_statuses text[] DEFAULT ARRAY['pending'::text, 'a,b'::text]",
        "p_x numeric(10,2) DEFAULT NULL::numeric",
    ]
    assert split_top_level("") == []


def run_docs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "notify_sql", "docs", *args],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


def test_cli_writes_the_reference(dsn: str, tmp_path: Path) -> None:
    output = tmp_path / "rpc.md"
    result = run_docs("--dsn", dsn, "--output", str(output))
    assert result.returncode == 0, result.stderr
    assert output.read_text() == generate(dsn, SCHEMA)


def test_cli_refuses_a_schema_without_functions(empty_dsn: str) -> None:
    result = run_docs("--dsn", empty_dsn)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "schema notify holds no functions" in result.stderr


def test_reference_has_one_section_per_group_with_internal_helpers_marked() -> None:
    reference = RPC_DOCS.read_text()
    headings = [line for line in reference.splitlines() if line.startswith("## ")]
    assert headings == [
        "## Queue",
        "## Deliveries",
        "## Analytics",
        "## Email",
        "## Operate",
        "## Sms",
        "## Internal helpers",
        "## Defined in migrations",
    ]
    queue = reference.split("## Queue\n")[1].split("\n## ")[0]
    internal = reference.split("## Internal helpers\n")[1].split("\n## ")[0]
    migrations = reference.split("## Defined in migrations\n")[1]
    assert "### claim_pending_jobs\n" in queue and "Internal helper" not in queue
    for group in ("email", "operate", "sms"):  # the groups after the first three, by name
        section = reference.split(f"## {group.capitalize()}\n")[1].split("\n## ")[0]
        assert f"`sql/functions/{group}/`, wrapped by the `{group.capitalize()}` class" in section
        assert "Internal helper" not in section
    check = internal.split("### check_required\n")[1].split("\n### ")[0]
    assert "- **Internal helper, not public API.**" in check
    assert "| [`delivery_funnel_of`](#delivery_funnel_of) |" in migrations
    assert "| public (analytics) |" in migrations  # rebuild_delivery_funnel_rollup
