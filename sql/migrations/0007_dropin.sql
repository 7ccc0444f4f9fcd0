-- 0007_dropin: the tables the seed platform's (BuildOS) callers rely on, so that its
-- apps work unchanged on a `--schema public` install (docs/switching-from-buildos.md).
--
-- * notification_subscriptions: who receives which event type. emit_notification_event
--   fans an event out only to active subscribers of its type (the target user if
--   subscribed, every active subscriber when there is no target); no subscription, no
--   delivery. A signed-in user manages exactly their own rows (row level security),
--   as the platform's web app does directly; admin_only (who may see admin events) is
--   set by service_role only.
-- Every table: row level security enabled, service_role full access, nothing for anon.

CREATE TABLE notification_subscriptions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL,
  event_type text NOT NULL CHECK (event_type <> '' AND length(event_type) <= 200),
  is_active boolean NOT NULL DEFAULT true,
  admin_only boolean NOT NULL DEFAULT false,
  filters jsonb CHECK (filters IS NULL OR jsonb_typeof(filters) = 'object'),
  created_by uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT notification_subscriptions_user_event_key UNIQUE (user_id, event_type)
);
-- emit reads active subscribers of one event type (the unique index serves user lookups).
CREATE INDEX notification_subscriptions_event_type_idx
  ON notification_subscriptions (event_type, user_id) WHERE is_active;

ALTER TABLE notification_subscriptions ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON notification_subscriptions FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON notification_subscriptions TO service_role;
CREATE POLICY service_role_all ON notification_subscriptions
  FOR ALL TO service_role USING (true) WITH CHECK (true);
GRANT SELECT, DELETE ON notification_subscriptions TO authenticated;
GRANT INSERT (user_id, event_type, is_active, filters, created_by, updated_at),
      UPDATE (user_id, event_type, is_active, filters, created_by, updated_at)
  ON notification_subscriptions TO authenticated;
-- Identity: the JWT `sub` claim, each current_setting in its own SELECT so the
-- planner evaluates it once per statement (Supabase splinter's auth_rls_initplan).
CREATE POLICY user_reads_own ON notification_subscriptions FOR SELECT TO authenticated
  USING (user_id = (SELECT nullif(coalesce(nullif((SELECT current_setting('request.jwt.claim.sub', true)), ''), nullif((SELECT current_setting('request.jwt.claims', true)), '')::jsonb ->> 'sub'), '')::uuid));
CREATE POLICY user_adds_own ON notification_subscriptions FOR INSERT TO authenticated
  WITH CHECK (user_id = (SELECT nullif(coalesce(nullif((SELECT current_setting('request.jwt.claim.sub', true)), ''), nullif((SELECT current_setting('request.jwt.claims', true)), '')::jsonb ->> 'sub'), '')::uuid));
CREATE POLICY user_changes_own ON notification_subscriptions FOR UPDATE TO authenticated
  USING (user_id = (SELECT nullif(coalesce(nullif((SELECT current_setting('request.jwt.claim.sub', true)), ''), nullif((SELECT current_setting('request.jwt.claims', true)), '')::jsonb ->> 'sub'), '')::uuid))
  WITH CHECK (user_id = (SELECT nullif(coalesce(nullif((SELECT current_setting('request.jwt.claim.sub', true)), ''), nullif((SELECT current_setting('request.jwt.claims', true)), '')::jsonb ->> 'sub'), '')::uuid));
CREATE POLICY user_removes_own ON notification_subscriptions FOR DELETE TO authenticated
  USING (user_id = (SELECT nullif(coalesce(nullif((SELECT current_setting('request.jwt.claim.sub', true)), ''), nullif((SELECT current_setting('request.jwt.claims', true)), '')::jsonb ->> 'sub'), '')::uuid));
