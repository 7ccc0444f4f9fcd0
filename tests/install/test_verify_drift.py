"""`verify` sees every kind of drift, read-only; `migrate` repairs or refuses it.

Every install records a snapshot of the catalog it produced (one row per object it
owns); `verify` compares the live catalog with it and the files with the recorded
checksums, so it needs no CREATE privilege. Each case below changes one thing by hand
and expects exactly one line naming it.
"""

from __future__ import annotations

import re
from contextlib import suppress

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from notify_sql.errors import MigrationError
from notify_sql.migrator import inspect, migrate
from tests.install.test_cli import assert_one_line_error, run

# (change made by hand, the one line verify must print)
DRIFT = {
    "dropped_index": (
        "DROP INDEX {s}.queue_jobs_claim_idx",
        "index queue_jobs_claim_idx was dropped",
    ),
    "rls_switched_off": (
        "ALTER TABLE {s}.notification_deliveries DISABLE ROW LEVEL SECURITY",
        "table notification_deliveries: row_level_security was true, now false",
    ),
    "dropped_policy": (
        "DROP POLICY user_reads_own ON {s}.notification_preferences",
        "policy notification_preferences.user_reads_own was dropped",
    ),
    "added_column": (
        "ALTER TABLE {s}.queue_jobs ADD COLUMN extra integer",
        "column queue_jobs.extra was added",
    ),
    "lost_table_grant": (
        "REVOKE SELECT ON {s}.queue_jobs FROM service_role",
        "table queue_jobs: grants lost service_role SELECT",
    ),
    "changed_default": (
        "ALTER TABLE {s}.queue_jobs ALTER COLUMN priority SET DEFAULT 5",
        'column queue_jobs.priority: default was "10", now "5"',
    ),
    "dropped_constraint": (
        "ALTER TABLE {s}.queue_jobs DROP CONSTRAINT queue_jobs_processing_has_token",
        "constraint queue_jobs.queue_jobs_processing_has_token was dropped",
    ),
    "dropped_trigger": (
        "DROP TRIGGER delivery_funnel_tracked ON {s}.notification_deliveries",
        "trigger notification_deliveries.delivery_funnel_tracked was dropped",
    ),
    "migration_function_changed": (
        "ALTER FUNCTION {s}.rebuild_delivery_funnel_rollup() SET work_mem = '64MB'",
        "function rebuild_delivery_funnel_rollup(): definition differs from what the install left",
    ),
    "type_changed": (
        "ALTER TYPE {s}.queue_job_input ADD ATTRIBUTE extra integer",
        "column queue_job_input.extra was added",
    ),
}


def change(dsn: str, statement: str, schema: str = "notify") -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement.format(s=schema))


@pytest.mark.parametrize("case", DRIFT)
def test_each_drift_is_one_line_and_migrate_refuses_it(dsn: str, case: str) -> None:
    statement, line = DRIFT[case]
    change(dsn, statement)
    assert inspect(dsn).drift == [line]
    with pytest.raises(MigrationError, match=f"refused: .*{re.escape(line)}"):
        migrate(dsn)
    assert inspect(dsn).drift == [line]  # the refusal changed nothing


def test_verify_exits_1_listing_each_drift_and_migrate_exits_2(dsn: str) -> None:
    for case in ("dropped_index", "rls_switched_off", "dropped_policy", "added_column"):
        change(dsn, DRIFT[case][0])
    result = run("verify", "--dsn", dsn)
    assert result.returncode == 1, result
    assert sorted(result.stdout.splitlines()) == sorted(
        DRIFT[case][1]
        for case in ("dropped_index", "rls_switched_off", "dropped_policy", "added_column")
    )
    refused = run("migrate", "--dsn", dsn)
    assert_one_line_error(refused, "refused: the schema changed since it was installed")
    assert "(and 3 more)" in refused.stderr


def test_an_applied_migration_edited_is_drift_exit_1(dsn: str) -> None:
    # The file on disk and the recorded checksum disagree: the same as an edited file.
    change(dsn, "UPDATE {s}.notify_sql_migrations SET checksum = 'x' WHERE version = '0001'")
    result = run("verify", "--dsn", dsn)
    assert result.returncode == 1
    assert result.stdout.startswith("migration 0001_queue was edited after it was applied")
    assert_one_line_error(run("migrate", "--dsn", dsn), "0001_queue was edited")


def test_a_lost_schema_grant_is_drift_that_migrate_repairs(dsn: str) -> None:
    change(dsn, "REVOKE USAGE ON SCHEMA {s} FROM authenticated")
    assert inspect(dsn).drift == ["schema notify: grants lost authenticated USAGE"]
    migrate(dsn)
    assert inspect(dsn).drift == []


def test_a_hand_edited_function_is_repaired_as_before(dsn: str) -> None:
    change(dsn, "ALTER FUNCTION {s}.queue_stats() SET work_mem = '64MB'")
    drift = inspect(dsn).drift
    assert drift == ["function queue_stats(): definition differs from what the install left"], drift
    assert [s.name for s in migrate(dsn)] == ["queue_stats"]
    assert inspect(dsn).drift == []


@pytest.mark.parametrize("schema", ["notify", "public"])
def test_verify_runs_under_a_monitoring_role_without_create(empty_dsn: str, schema: str) -> None:
    migrate(empty_dsn, schema)
    role = "notify_sql_test_monitor"
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        with suppress(psycopg.errors.DuplicateObject):  # roles are server-wide
            conn.execute(f"CREATE ROLE {role} LOGIN")
        # Exactly what README's "Privileges" section tells a monitoring role to get.
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        conn.execute(
            f"GRANT SELECT ON {schema}.notify_sql_migrations, {schema}.notify_sql_functions,"
            f" {schema}.notify_sql_catalog TO {role}"
        )
        if schema == "public":  # an app's own table in a shared schema is not the install's
            conn.execute("CREATE TABLE public.app_owned (id int)")
        can_create = conn.execute(
            "SELECT has_database_privilege(%s, current_database(), 'CREATE'),"
            " has_schema_privilege(%s, %s, 'CREATE')",
            (role, role, schema),
        ).fetchone()
    monitor = make_conninfo(empty_dsn, user=role)
    if schema == "notify":
        assert can_create == (False, False)
    clean = run("verify", "--dsn", monitor, "--schema", schema)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert run("status", "--dsn", monitor, "--schema", schema).returncode == 0

    change(empty_dsn, "DROP POLICY recipient_reads_own ON {s}.notification_deliveries", schema)
    drift = run("verify", "--dsn", monitor, "--schema", schema)
    assert drift.returncode == 1
    assert drift.stdout == "policy notification_deliveries.recipient_reads_own was dropped\n"
