-- The runner's catalog statements, one per `-- name:` header (notify_sql/queries.py
-- reads them). {schema}, {owner}, {roles} and {table} are filled in with psycopg.sql (a
-- Literal or an Identifier), never by string formatting.

-- name: catalog_snapshot
-- Every object the install owns, one row each: (kind, identity, definition as jsonb).
-- An install owns everything in a schema its owner role owns, and only the objects
-- that role owns in a schema it shares (Supabase's public). Run with search_path =
-- pg_catalog so every name in the definitions is schema-qualified whatever the
-- session's path; OIDs, grantors and the order of grants are left out, so only a
-- change a user could see shows up as a difference.
WITH install AS (
  SELECT n.oid AS nsp, n.nspname, n.nspowner, r.oid AS owner, n.nspowner = r.oid AS whole
  FROM pg_namespace n, pg_roles r
  WHERE n.nspname = {schema} AND r.rolname = {owner}
),
relations AS (
  SELECT c.* FROM pg_class c JOIN install i ON c.relnamespace = i.nsp
  WHERE (i.whole OR c.relowner = i.owner)
    AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'i', 'I', 'c')
),
objects (kind, identity, owner, acl, definition) AS (
  -- identity is text from the first branch on: as `name` it would cut every identity at
  -- 63 bytes, and on PostgreSQL 18 a column's CHECK and NOT NULL constraints would collide.
  SELECT 'schema', i.nspname::text, i.nspowner, n.nspacl,
         jsonb_build_object('comment', obj_description(i.nsp, 'pg_namespace'))
  FROM install i JOIN pg_namespace n ON n.oid = i.nsp
  UNION ALL
  SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'v' THEN 'view'
           WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence'
           WHEN 'f' THEN 'foreign table' WHEN 'c' THEN 'type' ELSE 'index' END,
         c.relname, c.relowner,
         coalesce(c.relacl, acldefault(CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char", c.relowner)),
         jsonb_build_object(
           'row_level_security', c.relrowsecurity, 'forced', c.relforcerowsecurity,
           'persistence', c.relpersistence, 'options', c.reloptions,
           'comment', obj_description(c.oid, 'pg_class'),
           'index', CASE WHEN c.relkind IN ('i', 'I') THEN pg_get_indexdef(c.oid) END,
           'view', CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END,
           'partition_key', CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
           'sequence', (SELECT jsonb_build_array(format_type(s.seqtypid, NULL), s.seqstart,
                                s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle)
                        FROM pg_sequence s WHERE s.seqrelid = c.oid))
  FROM relations c
  UNION ALL
  SELECT 'column', c.relname || '.' || a.attname, c.relowner, a.attacl,
         jsonb_build_object(
           'type', format_type(a.atttypid, a.atttypmod), 'not_null', a.attnotnull,
           'default', pg_get_expr(d.adbin, d.adrelid), 'identity', nullif(a.attidentity, ''),
           'generated', nullif(a.attgenerated, ''), 'collation', a.attcollation::regcollation::text,
           'comment', col_description(c.oid, a.attnum), 'position', a.attnum)
  FROM relations c
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
  WHERE c.relkind NOT IN ('i', 'I', 'S')
  UNION ALL
  SELECT 'constraint', coalesce(c.relname, t.typname) || '.' || con.conname,
         coalesce(c.relowner, t.typowner), NULL,
         jsonb_build_object('definition', pg_get_constraintdef(con.oid),
                            'validated', con.convalidated)
  FROM pg_constraint con
  LEFT JOIN relations c ON c.oid = con.conrelid
  LEFT JOIN pg_type t ON t.oid = con.contypid
  JOIN install i ON i.nsp = con.connamespace
  WHERE c.oid IS NOT NULL OR (t.oid IS NOT NULL AND (i.whole OR t.typowner = i.owner))
  UNION ALL
  SELECT 'policy', c.relname || '.' || pol.polname, c.relowner, NULL,
         jsonb_build_object(
           'command', pol.polcmd, 'permissive', pol.polpermissive,
           'roles', ARRAY(SELECT CASE r WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(r)::text END
                          FROM unnest(pol.polroles) r ORDER BY 1),
           'using', pg_get_expr(pol.polqual, pol.polrelid),
           'with_check', pg_get_expr(pol.polwithcheck, pol.polrelid))
  FROM pg_policy pol JOIN relations c ON c.oid = pol.polrelid
  UNION ALL
  SELECT 'trigger', c.relname || '.' || tg.tgname, c.relowner, NULL,
         jsonb_build_object('definition', pg_get_triggerdef(tg.oid), 'enabled', tg.tgenabled)
  FROM pg_trigger tg JOIN relations c ON c.oid = tg.tgrelid
  WHERE NOT tg.tgisinternal
  UNION ALL
  SELECT 'type', t.typname, t.typowner, coalesce(t.typacl, acldefault('T', t.typowner)),
         jsonb_build_object(
           'kind', t.typtype, 'base', CASE WHEN t.typtype = 'd'
                                        THEN format_type(t.typbasetype, t.typtypmod) END,
           'not_null', t.typnotnull, 'default', t.typdefault,
           'labels', CASE WHEN t.typtype = 'e' THEN ARRAY(
             SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid
             ORDER BY e.enumsortorder) END,
           'comment', obj_description(t.oid, 'pg_type'))
  FROM pg_type t JOIN install i ON i.nsp = t.typnamespace
  WHERE (i.whole OR t.typowner = i.owner) AND t.typtype IN ('e', 'd', 'r', 'm')
  UNION ALL
  SELECT 'function', p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
         p.proowner, coalesce(p.proacl, acldefault('f', p.proowner)),
         jsonb_build_object('definition', pg_get_functiondef(p.oid),
                            'comment', obj_description(p.oid, 'pg_proc'))
  FROM pg_proc p JOIN install i ON i.nsp = p.pronamespace
  WHERE (i.whole OR p.proowner = i.owner) AND p.prokind <> 'a'
)
SELECT o.kind, o.identity,
       jsonb_strip_nulls(o.definition || jsonb_build_object(
         'owner', pg_get_userbyid(o.owner),
         'grants', ARRAY(
           SELECT DISTINCT CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END
                  || ' ' || a.privilege_type || CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END
           FROM aclexplode(o.acl) a
           WHERE a.grantee <> o.owner
             AND (a.grantee = 0 OR pg_get_userbyid(a.grantee) IN ({roles})
                  -- In a shared schema only the grants to the install's roles are its own;
                  -- what a monitoring role needs (README, Privileges) is not drift.
                  OR NOT (o.kind = 'schema' AND (a.privilege_type = 'USAGE'
                                                 OR NOT (SELECT whole FROM install))
                          OR o.kind = 'table' AND o.identity IN ({runner_tables})
                             AND a.privilege_type = 'SELECT'))
           ORDER BY 1))) AS definition
FROM objects o
ORDER BY 1, 2;

-- name: record_catalog
-- Replaces the recorded snapshot with the live one; runs last in every install.
DELETE FROM {table};
INSERT INTO {table} (kind, identity, definition)
{snapshot};

-- name: recorded_catalog
SELECT kind, identity, definition FROM {table} ORDER BY 1, 2;

-- name: applied_migrations
SELECT version, name, checksum FROM {migrations} ORDER BY version;

-- name: recorded_functions
SELECT name, checksum FROM {functions} ORDER BY name;

-- name: table_exists
SELECT to_regclass(%(table)s) IS NOT NULL AS found;

-- name: scratch_schema
-- Where `migrate` applies every function file to compare it with the installed one
-- (inside a savepoint that is rolled back).
DROP SCHEMA IF EXISTS {scratch} CASCADE;
CREATE SCHEMA {scratch};

-- name: installed_functions
-- Definition, comment and grants (but the owner's) of every overload of these names.
SELECT p.proname AS name,
       pg_get_functiondef(p.oid) AS definition,
       coalesce(obj_description(p.oid, 'pg_proc'), '') AS comment,
       ARRAY(SELECT CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END
                    || ':' || a.privilege_type
             FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS a
             WHERE a.grantee <> p.proowner
             ORDER BY 1) AS grants
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = %(schema)s AND p.proname = ANY (%(names)s)
ORDER BY p.proname, p.oid;

-- name: current_search_path
SELECT current_setting('search_path');

-- name: set_search_path
-- For this transaction only.
SELECT set_config('search_path', %(path)s, true);
