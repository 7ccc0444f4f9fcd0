"""Least privilege, pinned search_path, ownership, and the static-analysis gates."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from notify_sql.migrator import OWNER_ROLE
from notify_sql.sources import load_migrations, sql_root
from notify_sql.throwaway import ThrowawayPostgres
from tests.helpers.gates import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
ROLES = ("public", "anon", "authenticated", "service_role", "notify_sql_monitor")

# Functions that run as their owner, and why each must. Everything else is INVOKER.
SECURITY_DEFINER: dict[str, str] = {}

# The reviewed privilege table: who may EXECUTE each function. A function missing here
# fails the matrix test, so a new function cannot ship without a decision. Queue,
# provider-update and analytics functions (and the helpers they call, since they run
# as the caller) are service_role only; end users read their own rows through RLS.
SERVICE_ONLY = frozenset({"service_role"})
PRIVILEGES: dict[str, frozenset[str]] = (
    dict.fromkeys(
        (
            # the validation family (check_*)
            "check_jsonb",
            "check_member",
            "check_time",
            # queue
            "add_queue_job",
            "add_queue_jobs",
            "cancel_brief_jobs_for_date",
            "cancel_job_with_reason",
            "cancel_jobs_atomic",
            "claim_pending_jobs",
            "complete_queue_job",
            "complete_queue_jobs",
            "fail_queue_job",
            "fail_queue_jobs",
            "heartbeat_queue_job",
            "prune_queue_jobs",
            "check_job_batch",
            "queue_retry_delay",
            "queue_stats",
            "queue_wake_workers",
            "release_queue_jobs",
            "reset_stalled_jobs",
            "retry_queue_job",
            "run_queue_upkeep",
            # queue flow control (issue 16)
            "next_limited_start",
            "pause_queue_limit",
            "queue_claim_keyed",
            "queue_key_running",
            "queue_keyed_bump",
            "queue_keyed_hint",
            "queue_keyed_next_start",
            "queue_pause_keys",
            "queue_worker_idle",
            "set_queue_limit",
            # deliveries and provider callbacks
            "apply_delivery_status",
            "create_sms_link",
            "delivery_status_max",
            "delivery_status_rank",
            "delivery_status_stages",
            "emit_notification_event",
            "generate_short_code",
            "is_http_url",
            "opt_out_user_channel",
            "record_email_event",
            "record_sms_link_click",
            "twilio_delivery_status",
            "twilio_status_rank",
            "update_sms_status_atomic",
            # analytics
            "get_notification_delivery_timeline",
            "get_notification_event_performance",
            "get_notification_overview",
            "get_sms_notification_stats",
            # the funnel sums (0005)
            "compact_delivery_funnel_rollup",
            "rebuild_delivery_funnel_rollup",
            # the status counts (0011)
            "rebuild_delivery_status_rollup",
            # the seed platform's other functions (dropin, 0007)
            "check_and_increment_sms_daily_limit",
            "check_choice",
            "create_tracking_link",
            "delete_old_completed_queue_jobs",
            "get_notification_active_subscriptions",
            "get_notification_failed_deliveries",
            "get_notification_overview_metrics",
            "get_sms_daily_metrics",
            "get_user_sms_metrics",
            "is_email_suppressed",
            "queue_sms_message",
            "record_sms_metric",
            "refresh_sms_metrics_daily",
            "upsert_email_suppression",
        ),
        SERVICE_ONLY,
    )
    | dict.fromkeys(
        (
            # What the operator console reads (notify_sql_monitor, 0009), and the helpers
            # those functions call as their caller.
            "analytics_delivery_funnel",
            "check_batch_size",
            "check_condition",
            "check_interval",
            "check_required",
            "check_text",
            "check_window",
            "delivery_funnel_of",
            "delivery_funnel_slice",
            "get_channel_funnel_in_slices",
            "get_delivery_status_counts",
            "get_notification_channel_performance",
            "get_notification_trace",
            "get_queue_health",
            "get_queue_throughput",
            "get_recent_failed_deliveries",
            "list_notification_deliveries",
            "list_queue_jobs",
            "queue_limit_status",  # the console's "Rate limits" table (issue 16)
        ),
        SERVICE_ONLY | {"notify_sql_monitor"},
    )
    | {
        # Trigger functions: fired by PostgreSQL, never called by anyone.
        "delivery_funnel_rollup_clear": frozenset(),
        "delivery_funnel_rollup_track": frozenset(),
        "delivery_status_rollup_clear": frozenset(),
        "delivery_status_rollup_track": frozenset(),
        "queue_keyed_changed": frozenset(),
        "queue_limit_relaxed": frozenset(),
        # The channel list (0010): called by the channel CHECK constraints, so also by
        # authenticated writing its own preference rows; a constant, it reads no data.
        "notification_channels": frozenset({"service_role", "authenticated", "notify_sql_monitor"}),
    }
)


def _functions(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT p.proname, p.oid::regprocedure::text, p.prosecdef, p.proconfig, "
        "       pg_get_userbyid(p.proowner), l.lanname "
        "FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang "
        "WHERE p.pronamespace = 'notify'::regnamespace ORDER BY 1"
    ).fetchall()


def test_every_function_pins_search_path_with_pg_temp_last(db: psycopg.Connection[Any]) -> None:
    offenders = []
    for _, signature, _, config, _, _ in _functions(db):
        paths = [c.split("=", 1)[1] for c in config or [] if c.startswith("search_path=")]
        if not paths or not (paths[0] == '""' or paths[0].replace(" ", "").endswith(",pg_temp")):
            offenders.append((signature, paths))
    assert offenders == []


def test_privilege_matrix(db: psycopg.Connection[Any]) -> None:
    """Every function x every role (PUBLIC, anon, authenticated, service_role)."""
    rows = db.execute(
        "SELECT p.proname, r, has_function_privilege(r, p.oid, 'EXECUTE') "
        "FROM pg_proc p, unnest(%s::text[]) r "
        "WHERE p.pronamespace = 'notify'::regnamespace",
        (list(ROLES),),
    ).fetchall()
    undeclared = sorted({name for name, _, _ in rows} - set(PRIVILEGES))
    assert undeclared == [], "functions with no entry in PRIVILEGES"
    wrong = [
        (name, role, allowed)
        for name, role, allowed in rows
        if allowed != (role in PRIVILEGES[name])
    ]
    assert wrong == []
    assert {name for name, _, _ in rows} == set(PRIVILEGES), "PRIVILEGES lists a dropped function"


def test_security_definer_only_where_declared(db: psycopg.Connection[Any]) -> None:
    definers = {name for name, _, definer, *_ in _functions(db) if definer}
    assert definers == set(SECURITY_DEFINER)


def test_every_object_belongs_to_the_owner_role(db: psycopg.Connection[Any]) -> None:
    owners = db.execute(
        "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class "
        "WHERE relnamespace = 'notify'::regnamespace "
        "UNION SELECT DISTINCT pg_get_userbyid(proowner) FROM pg_proc "
        "WHERE pronamespace = 'notify'::regnamespace "
        "UNION SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'notify'"
    ).fetchall()
    assert owners == [(OWNER_ROLE,)]


def test_only_the_owner_may_create_in_the_schema(db: psycopg.Connection[Any]) -> None:
    rows = db.execute(
        "SELECT r, has_schema_privilege(r, 'notify', 'CREATE'), "
        "       has_schema_privilege(r, 'notify', 'USAGE') "
        "FROM unnest(%s::text[]) r ORDER BY r",
        (list(ROLES),),
    ).fetchall()
    assert rows == [
        ("anon", False, False),
        ("authenticated", False, True),
        ("notify_sql_monitor", False, True),
        ("public", False, False),
        ("service_role", False, True),
    ]


def test_new_functions_of_the_owner_are_not_executable_by_public(
    db: psycopg.Connection[Any],
) -> None:
    """Default privileges, so even a function created outside the runner starts closed."""
    db.execute(f"SET ROLE {OWNER_ROLE}")
    db.execute("CREATE FUNCTION notify.fresh() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$")
    db.execute("RESET ROLE")
    row = db.execute(
        "SELECT has_function_privilege('public', 'notify.fresh()', 'EXECUTE')"
    ).fetchone()
    assert row == (False,)


def test_every_table_has_row_level_security(db: psycopg.Connection[Any]) -> None:
    without = db.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'notify'::regnamespace "
        "AND relkind IN ('r', 'p') AND NOT relrowsecurity"
    ).fetchall()
    assert without == []


# --- plpgsql_check ------------------------------------------------------------------

# Findings we accept, each with the reason: (function name, message start) -> why.
PLPGSQL_CHECK_ACCEPTED: dict[tuple[str, str], str] = {
    ("check_and_increment_sms_daily_limit", 'name of parameter "limit" is reserved keyword'): (
        "the seed platform's result column is named limit; callers read row.limit"
    ),
    # The advisory-lock calls of the enqueue wake-up are assignments to a dummy instead
    # of PERFORM: a simple expression skips the executor (about 0.4 us against 2 us),
    # on the hottest write path.
    ("add_queue_job", 'never read variable "v_void"'): "hot-path lock call",
    ("queue_wake_workers", 'never read variable "v_void"'): "hot-path lock call",
}


def _plpgsql_check_findings(
    db: psycopg.Connection[Any], pg_server: ThrowawayPostgres
) -> list[tuple[Any, ...]]:
    """Every finding of plpgsql_check (errors, warnings, extra and security warnings)
    over every PL/pgSQL function in the install schema that is not explained above."""
    available = db.execute(
        "SELECT count(*) FROM pg_available_extensions WHERE name = 'plpgsql_check'"
    ).fetchone()
    if available != (1,):
        if pg_server.embedded:
            pytest.skip("the embedded server has no plpgsql_check; the local server runs it")
        skip_or_fail("plpgsql_check is not installed for this server")
    db.execute("CREATE EXTENSION IF NOT EXISTS plpgsql_check")
    findings = db.execute(
        "SELECT p.proname, t.level, t.message, t.lineno "
        "FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang, "
        "LATERAL plpgsql_check_function_tb(p.oid, extra_warnings => true, "
        "                                  security_warnings => true) t "
        "WHERE p.pronamespace = 'notify'::regnamespace AND l.lanname = 'plpgsql' "
        "AND p.prorettype <> 'trigger'::regtype ORDER BY 1, 4"
    ).fetchall()
    return [
        finding
        for finding in findings
        if not any(
            finding[0] == name and finding[2].startswith(start)
            for name, start in PLPGSQL_CHECK_ACCEPTED
        )
    ]


def test_plpgsql_check_reports_nothing_unexplained(
    db: psycopg.Connection[Any], pg_server: ThrowawayPostgres
) -> None:
    assert _plpgsql_check_findings(db, pg_server) == []


def test_plpgsql_check_gate_fails_on_a_broken_function(
    db: psycopg.Connection[Any], pg_server: ThrowawayPostgres
) -> None:
    """The gate can fail: a body that names a missing column and leaves a variable unused."""
    db.execute(
        "CREATE FUNCTION notify.broken() RETURNS integer LANGUAGE plpgsql "
        "SET search_path = notify, pg_temp AS $$ "
        "DECLARE unused integer; BEGIN RETURN (SELECT no_such_column FROM queue_jobs); END $$"
    )
    findings = {(name, level) for name, level, _, _ in _plpgsql_check_findings(db, pg_server)}
    assert ("broken", "error") in findings


# --- squawk -------------------------------------------------------------------------


def _squawk() -> str:
    found = shutil.which("squawk") or str(Path(sys.executable).parent / "squawk")
    if not Path(found).exists():
        skip_or_fail("squawk (PyPI squawk-cli) is not installed")
    return found


def _run_squawk(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_squawk(), "--config", str(ROOT / ".squawk.toml"), "--reporter", "gcc",
         *sorted(str(p) for p in folder.glob("*.sql"))],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def _rendered_migrations(target: Path, extra: dict[str, str] | None = None) -> Path:
    target.mkdir()
    for migration in load_migrations(sql_root()):
        (target / migration.path.name).write_text(migration.for_schema("notify"))
    for name, text in (extra or {}).items():
        (target / name).write_text(text)
    return target


def test_squawk_finds_nothing_in_the_migrations(tmp_path: Path) -> None:
    result = _run_squawk(_rendered_migrations(tmp_path / "migrations"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_squawk_gate_fails_on_a_risky_migration(tmp_path: Path) -> None:
    """The gate can fail: an index built without CONCURRENTLY on a live table."""
    risky = {"9999_risky.sql": "CREATE INDEX queue_jobs_user_idx ON queue_jobs (user_id);\n"}
    result = _run_squawk(_rendered_migrations(tmp_path / "migrations", risky))
    assert result.returncode != 0
    assert "9999_risky.sql" in result.stdout
