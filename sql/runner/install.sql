-- The statements an install runs, in the order a run uses them (notify_sql/migrator.py).
-- Placeholders are filled in with psycopg.sql: {schema}, {owner}, {table} and the
-- runner tables as Identifiers; {schema_name}, {name}, {checksum}, {roles} and the like
-- as Literals; {set} is SET LOCAL inside the runner's transaction and SET in Supabase
-- files, which may run without one (tests/install/test_runner_sql.py renders every statement and
-- runs plpgsql_check over the DO blocks and squawk over the DDL).

-- name: lock
-- One install at a time per database (role creation is cluster-wide, so installs into
-- two schemas queue too); transaction-scoped, so a crashed run cannot leave it behind.
-- Once it is held, a table lock held by a long transaction fails fast, not queues.
SELECT pg_advisory_xact_lock({lock_key});
SET LOCAL lock_timeout = {lock_timeout};

-- name: create_roles
-- The API roles and the owner role, each created (NOLOGIN) only where missing.
DO $roles$
DECLARE
  missing text;
BEGIN
  FOR missing IN
    SELECT r.role FROM unnest({roles}::text[]) AS r(role)
    WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r.role)
  LOOP
    EXECUTE format('CREATE ROLE %I NOLOGIN', missing);
  END LOOP;
END
$roles$;

-- name: create_schema
GRANT {owner} TO CURRENT_USER;
CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {owner};

-- name: shared_schema_access
-- Supabase's public schema belongs to the platform: only add what the install needs.
GRANT USAGE, CREATE ON SCHEMA {schema} TO {owner};

-- name: own_schema_access
REVOKE ALL ON SCHEMA {schema} FROM PUBLIC, anon;

-- name: schema_usage
GRANT USAGE ON SCHEMA {schema} TO service_role, authenticated;

-- name: become_owner
-- From here on the run acts as the owner role: it owns everything it creates, and new
-- functions of that role are never executable by PUBLIC by default.
{set} ROLE {owner};
ALTER DEFAULT PRIVILEGES FOR ROLE {owner} REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
CREATE TABLE IF NOT EXISTS {migrations} (
  version text PRIMARY KEY,
  name text NOT NULL,
  checksum text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {functions} (
  name text PRIMARY KEY,
  checksum text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {catalog} (
  kind text,
  identity text,
  definition jsonb NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (kind, identity)
);

-- name: runner_table_access
-- Closed to the API roles; who else may read the install's records is decided by the
-- table grant alone (README: a monitoring role gets SELECT), so `verify` runs read-only.
ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON {table} FROM PUBLIC, service_role, authenticated, anon;
DROP POLICY IF EXISTS readable ON {table};
CREATE POLICY readable ON {table} FOR SELECT USING (true);

-- name: use_schema
{set} search_path = {schema}, pg_temp;

-- name: reset_search_path
RESET search_path;

-- name: record_migration
INSERT INTO {migrations} (version, name, checksum) VALUES ({version}, {name}, {checksum});

-- name: defer_body_checks
-- Bodies are not validated at creation so that files apply in any order (a SQL function
-- may call one whose file sorts later); plpgsql_check and the tests validate them.
{set} check_function_bodies = off;

-- name: drop_routines
-- Every overload of one name; no CASCADE: a dependent object fails the install loudly.
DO $drop$
DECLARE
  signature regprocedure;
BEGIN
  FOR signature IN
    SELECT p.oid FROM pg_catalog.pg_proc p
    WHERE p.pronamespace = {schema_name}::regnamespace AND p.proname = {name}
      AND p.prokind IN ('f', 'p')
  LOOP
    EXECUTE format('DROP ROUTINE %s', signature);
  END LOOP;
END
$drop$;

-- name: revoke_routines
-- EXECUTE revoked from PUBLIC and from every grantee but the owner, whatever default
-- privileges (Supabase's included) added when the function was created.
DO $revoke$
DECLARE
  target record;
BEGIN
  FOR target IN
    SELECT p.oid::regprocedure AS signature, g.grantee
    FROM pg_catalog.pg_proc p
    CROSS JOIN LATERAL (SELECT 0::oid
                        UNION SELECT a.grantee FROM aclexplode(p.proacl) AS a
                        WHERE a.grantee <> p.proowner) AS g (grantee)
    WHERE p.pronamespace = {schema_name}::regnamespace AND p.proname = {name}
      AND p.prokind IN ('f', 'p')
  LOOP
    IF target.grantee = 0 THEN
      EXECUTE format('REVOKE ALL ON ROUTINE %s FROM PUBLIC', target.signature);
    ELSE
      EXECUTE format('REVOKE ALL ON ROUTINE %s FROM %I', target.signature,
                     pg_get_userbyid(target.grantee));
    END IF;
  END LOOP;
END
$revoke$;

-- name: record_function
INSERT INTO {functions} (name, checksum) VALUES ({name}, {checksum})
ON CONFLICT (name) DO UPDATE SET checksum = excluded.checksum, applied_at = now();

-- name: forget_function
DELETE FROM {functions} WHERE name = {name};

-- name: final_check
-- Refuses to commit an install whose functions lack a pinned search_path or are
-- executable by PUBLIC or anon (guards against a file that forgot its SET clause).
DO $check$
DECLARE
  offenders text;
BEGIN
  SELECT string_agg(p.oid::regprocedure::text, ', ') INTO offenders
  FROM pg_catalog.pg_proc p
  WHERE p.pronamespace = {schema_name}::regnamespace AND p.proname = ANY ({names}::text[])
    AND (NOT EXISTS (SELECT FROM unnest(p.proconfig) AS c WHERE c LIKE 'search\_path=%')
         OR has_function_privilege('anon', p.oid, 'EXECUTE')
         OR has_function_privilege('public', p.oid, 'EXECUTE'));
  IF offenders IS NOT NULL THEN
    RAISE EXCEPTION 'without a pinned search_path, or executable by PUBLIC or anon: %',
      offenders;
  END IF;
END
$check$;
