"""The checks of Supabase's linter (splinter) that apply to what notify-sql installs.

Supabase's dashboard advisors run splinter over every schema the API exposes. The
queries below are written here from each rule's documented meaning (not splinter's
SQL), generic over the install schema, so a table or policy added by any migration is
covered. They run against the `notify` and the `public` (Supabase drop-in) installs,
and each is proven able to fail by a deliberately bad object.

Rules that concern objects notify-sql never creates (auth.users exposure, extensions,
storage buckets, materialized or foreign tables in the API, replication slots, table
bloat, unused indexes) are left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from notify_sql.migrator import migrate

# Each query returns one row per finding: the object it names. %(schema)s is the install.
LINTS: dict[str, str] = {
    # A policy calling auth.uid()/jwt()/role()/email() or current_setting() bare is
    # evaluated once per row; `(SELECT ...)` makes it an InitPlan, once per statement.
    # Stricter than the rule: EVERY call must be wrapped, not just one of them.
    "auth_rls_initplan": r"""
        SELECT c.relname || '.' || p.polname
        FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
        CROSS JOIN LATERAL (VALUES (pg_get_expr(p.polqual, p.polrelid)),
                                   (pg_get_expr(p.polwithcheck, p.polrelid))) e(expr)
        WHERE c.relnamespace = %(schema)s::regnamespace AND c.relrowsecurity
          AND (SELECT count(*) FROM regexp_matches(
                 e.expr, '(auth\.(uid|jwt|role|email)|current_setting)\(', 'gi'))
            > (SELECT count(*) FROM regexp_matches(
                 e.expr, 'select\s+(auth\.(uid|jwt|role|email)|current_setting)\(', 'gi'))
    """,
    # A function without a pinned search_path resolves names through the caller's.
    "function_search_path_mutable": """
        SELECT p.proname::text FROM pg_proc p
        WHERE p.pronamespace = %(schema)s::regnamespace AND p.prokind IN ('f', 'p')
          AND NOT EXISTS (SELECT FROM unnest(p.proconfig) s WHERE s LIKE 'search\\_path=%%')
    """,
    # A table in an API-exposed schema without row level security is readable by every
    # role the grants allow (we treat the install schema as exposed, whatever its name).
    "rls_disabled_in_public": """
        SELECT c.relname FROM pg_class c
        WHERE c.relnamespace = %(schema)s::regnamespace AND c.relkind IN ('r', 'p')
          AND NOT c.relrowsecurity
    """,
    "policy_exists_rls_disabled": """
        SELECT DISTINCT c.relname FROM pg_class c JOIN pg_policy p ON p.polrelid = c.oid
        WHERE c.relnamespace = %(schema)s::regnamespace AND NOT c.relrowsecurity
    """,
    # INFO in splinter; every notify-sql table is closed by a policy for service_role
    # at least, so a table left with none is a mistake here.
    "rls_enabled_no_policy": """
        SELECT c.relname FROM pg_class c
        WHERE c.relnamespace = %(schema)s::regnamespace AND c.relkind IN ('r', 'p')
          AND c.relrowsecurity AND NOT EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = c.oid)
    """,
    # Two permissive policies for one role and one action are both evaluated for every
    # row (OR-ed); one policy should say it. PUBLIC counts for every role, ALL for
    # every action.
    "multiple_permissive_policies": """
        SELECT c.relname || ' ' || r.rolname || ' ' || a.action
        FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
        JOIN pg_roles r ON r.oid = ANY (p.polroles) OR p.polroles = '{0}'
        CROSS JOIN LATERAL (SELECT unnest(CASE p.polcmd WHEN '*'
          THEN ARRAY['r', 'a', 'w', 'd'] ELSE ARRAY[p.polcmd::text] END)) a(action)
        WHERE c.relnamespace = %(schema)s::regnamespace AND p.polpermissive
          AND r.rolname IN ('anon', 'authenticated', 'service_role', 'authenticator')
        GROUP BY 1 HAVING count(*) > 1
    """,
    # USING (true) / WITH CHECK (true) on a write policy for anon, authenticated or
    # PUBLIC lets them change any row (SELECT policies are exempt: public reads).
    "rls_policy_always_true": """
        SELECT c.relname || '.' || p.polname
        FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
        WHERE c.relnamespace = %(schema)s::regnamespace AND p.polpermissive
          AND p.polcmd IN ('a', 'w', 'd', '*')
          AND (p.polroles = '{0}' OR EXISTS (SELECT FROM unnest(p.polroles) r
               WHERE pg_get_userbyid(r) IN ('anon', 'authenticated')))
          AND (coalesce(pg_get_expr(p.polqual, p.polrelid), 'true') = 'true'
               AND p.polcmd <> 'a'
               OR coalesce(pg_get_expr(p.polwithcheck, p.polrelid), 'true') = 'true'
               AND p.polcmd <> 'd' AND (p.polcmd = 'a' OR p.polqual IS NULL
                                        OR pg_get_expr(p.polqual, p.polrelid) = 'true'))
    """,
    # A view runs with its owner's privileges, bypassing the caller's RLS, unless it is
    # declared security_invoker.
    "security_definer_view": """
        SELECT c.relname FROM pg_class c
        WHERE c.relnamespace = %(schema)s::regnamespace AND c.relkind = 'v'
          AND NOT coalesce('security_invoker=true' = ANY (c.reloptions)
                           OR 'security_invoker=on' = ANY (c.reloptions), false)
    """,
    # A SECURITY DEFINER function an end-user role may call runs with its owner's rights.
    "security_definer_function_executable": """
        SELECT p.proname || ' by ' || r
        FROM pg_proc p CROSS JOIN unnest(ARRAY['anon', 'authenticated']) r
        WHERE p.pronamespace = %(schema)s::regnamespace AND p.prosecdef
          AND has_function_privilege(r, p.oid, 'EXECUTE')
    """,
    # A foreign key whose columns do not lead some index makes every delete or key
    # update of the referenced row scan the referencing table.
    "unindexed_foreign_keys": """
        SELECT c.relname || '.' || con.conname
        FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
        WHERE c.relnamespace = %(schema)s::regnamespace AND con.contype = 'f'
          AND NOT EXISTS (
            SELECT FROM pg_index i WHERE i.indrelid = con.conrelid
              AND (i.indkey::int2[])[0:cardinality(con.conkey) - 1] @> con.conkey
              AND (i.indkey::int2[])[0:cardinality(con.conkey) - 1] <@ con.conkey)
    """,
    # Two indexes with the same columns, operator classes, expressions and predicate.
    "duplicate_index": """
        SELECT string_agg(ic.relname, ' = ' ORDER BY ic.relname)
        FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
        JOIN pg_class c ON c.oid = i.indrelid
        WHERE c.relnamespace = %(schema)s::regnamespace
        GROUP BY i.indrelid, i.indkey::text, i.indclass::text, i.indcollation::text,
                 pg_get_expr(i.indexprs, i.indrelid), pg_get_expr(i.indpred, i.indrelid)
        HAVING count(*) > 1
    """,
    "no_primary_key": """
        SELECT c.relname FROM pg_class c
        WHERE c.relnamespace = %(schema)s::regnamespace AND c.relkind IN ('r', 'p')
          AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conrelid = c.oid
                          AND k.contype = 'p')
    """,
}

# For each rule: statements adding an object it must flag, and the finding it names.
BAD_OBJECTS: dict[str, tuple[str, str]] = {
    "auth_rls_initplan": (
        # One call wrapped and one bare: still re-evaluated per row.
        "CREATE POLICY bad_bare ON {s}.notification_deliveries FOR DELETE TO authenticated"
        " USING (recipient_user_id::text = coalesce("
        "(SELECT current_setting('request.jwt.claim.sub', true)),"
        " current_setting('request.jwt.claims', true)::jsonb ->> 'sub'))",
        "notification_deliveries.bad_bare",
    ),
    "function_search_path_mutable": (
        "CREATE FUNCTION {s}.bad_path() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "bad_path",
    ),
    "rls_disabled_in_public": (
        "CREATE TABLE {s}.bad_open (id int PRIMARY KEY)",
        "bad_open",
    ),
    "policy_exists_rls_disabled": (
        "CREATE TABLE {s}.bad_off (id int PRIMARY KEY);"
        " CREATE POLICY p ON {s}.bad_off TO service_role USING (id > 0)",
        "bad_off",
    ),
    "rls_enabled_no_policy": (
        "CREATE TABLE {s}.bad_closed (id int PRIMARY KEY);"
        " ALTER TABLE {s}.bad_closed ENABLE ROW LEVEL SECURITY",
        "bad_closed",
    ),
    "multiple_permissive_policies": (
        "CREATE POLICY bad_second ON {s}.notification_preferences FOR SELECT"
        " TO authenticated USING (false)",
        "notification_preferences authenticated r",
    ),
    "rls_policy_always_true": (
        "CREATE POLICY bad_true ON {s}.notification_preferences FOR UPDATE"
        " TO authenticated USING (true)",
        "notification_preferences.bad_true",
    ),
    "security_definer_view": (
        "CREATE VIEW {s}.bad_view AS SELECT 1 AS x",
        "bad_view",
    ),
    "security_definer_function_executable": (
        "CREATE FUNCTION {s}.bad_definer() RETURNS int LANGUAGE sql SECURITY DEFINER"
        " SET search_path = '' AS 'SELECT 1';"
        " GRANT EXECUTE ON FUNCTION {s}.bad_definer() TO authenticated",
        "bad_definer by authenticated",
    ),
    "unindexed_foreign_keys": (
        "CREATE TABLE {s}.bad_child (id int PRIMARY KEY,"
        " job_id uuid CONSTRAINT bad_fk REFERENCES {s}.queue_jobs)",
        "bad_child.bad_fk",
    ),
    "duplicate_index": (
        "CREATE INDEX bad_twin ON {s}.queue_jobs (priority, scheduled_for)"
        " WHERE status = 'pending' AND limit_key IS NULL",
        "bad_twin = queue_jobs_claim_idx",
    ),
    "no_primary_key": (
        "CREATE TABLE {s}.bad_nokey (id int)",
        "bad_nokey",
    ),
}


def findings(conn: psycopg.Connection[Any], schema: str) -> dict[str, list[str]]:
    """Every lint's findings; policy expressions read with an empty search_path, so a
    call to auth.uid() prints qualified, as the rule expects."""
    conn.execute("SET search_path = ''")
    found = {
        lint: sorted(row[0] for row in conn.execute(query, {"schema": schema}))
        for lint, query in LINTS.items()
    }
    conn.execute("RESET search_path")
    return {lint: rows for lint, rows in found.items() if rows}


@pytest.fixture(params=["notify", "public"])
def installed(request: pytest.FixtureRequest, empty_dsn: str) -> Iterator[tuple[str, str]]:
    migrate(empty_dsn, request.param)
    yield empty_dsn, request.param


def test_the_install_passes_every_lint(installed: tuple[str, str]) -> None:
    dsn, schema = installed
    with psycopg.connect(dsn) as conn:
        assert findings(conn, schema) == {}


def test_every_lint_covers_a_bad_object() -> None:
    assert BAD_OBJECTS.keys() == LINTS.keys()


@pytest.mark.parametrize("lint", LINTS)
def test_each_lint_flags_a_bad_object(db: psycopg.Connection[Any], lint: str) -> None:
    statements, finding = BAD_OBJECTS[lint]
    with db.transaction(force_rollback=True):
        db.execute(statements.format(s="notify"))
        assert finding in findings(db, "notify").get(lint, [])


def test_the_user_policies_read_the_claims_once_per_statement(db: psycopg.Connection[Any]) -> None:
    """The InitPlan the linter asks for is really there: the claim is computed once,
    before the scan, and the scan compares against its result."""
    db.execute("SET ROLE authenticated")
    for table in ("notification_deliveries", "notification_preferences"):
        plan = [
            row[0]
            for row in db.execute(f"EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM notify.{table}")
        ]
        text = "\n".join(plan)
        assert "InitPlan" in text, text
        per_row = [line for line in plan if line.strip().startswith(("Filter:", "Index Cond:"))]
        assert per_row and not any("current_setting" in line for line in per_row), text
    db.execute("RESET ROLE")
