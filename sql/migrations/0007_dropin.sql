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

-- * sms_messages gains what queue_sms_message records: the caller's metadata, when the
--   message is due, its send job, and an optional dedup key (one message per key, even
--   under concurrent calls: a unique index, and the function's ON CONFLICT).
ALTER TABLE sms_messages
  ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
  ADD COLUMN scheduled_for timestamptz,
  ADD COLUMN queue_job_id uuid,
  ADD COLUMN dedup_key text CHECK (dedup_key <> '' AND length(dedup_key) <= 200);
-- Not CONCURRENTLY (it cannot run inside the install transaction): both indexes are
-- partial over columns added just above, so every existing row is NULL there and none
-- is indexed; the build is one read of sms_messages under a SHARE lock, bounded by
-- the runner's lock_timeout, and leaves nothing to maintain for old rows.
-- squawk-ignore require-concurrent-index-creation
CREATE UNIQUE INDEX sms_messages_dedup_key_key ON sms_messages (dedup_key)
  WHERE dedup_key IS NOT NULL;
-- delete_old_completed_queue_jobs keeps jobs an SMS message still names.
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX sms_messages_queue_job_id_idx ON sms_messages (queue_job_id)
  WHERE queue_job_id IS NOT NULL;

-- * sms_daily_counts: the per-user daily SMS counter behind
--   check_and_increment_sms_daily_limit (the UTC day it counts, and an optional
--   per-user limit; NULL: the caller's default).
CREATE TABLE sms_daily_counts (
  user_id uuid PRIMARY KEY,
  daily_limit integer CHECK (daily_limit >= 0),
  count_day date NOT NULL,
  sms_count integer NOT NULL DEFAULT 0 CHECK (sms_count >= 0),
  reset_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- * sms_metrics: counters and sums recorded by record_sms_metric, one row per (day,
--   hour or NULL for the whole day, user or NULL, metric type); NULLs compare equal in
--   the key, so a daily or global metric is one row too.
CREATE TABLE sms_metrics (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  metric_date date NOT NULL,
  metric_hour integer CHECK (metric_hour BETWEEN 0 AND 23),
  user_id uuid,
  metric_type text NOT NULL CHECK (metric_type <> '' AND length(metric_type) <= 100),
  metric_value numeric NOT NULL,
  metadata jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT sms_metrics_key UNIQUE NULLS NOT DISTINCT
    (metric_date, metric_hour, user_id, metric_type)
);
CREATE INDEX sms_metrics_user_id_idx ON sms_metrics (user_id, metric_date)
  WHERE metric_hour IS NULL;

-- * sms_metrics_daily: the daily summary refresh_sms_metrics_daily writes and
--   get_sms_daily_metrics reads (a table, not a materialized view, so service_role can
--   refresh it without owning it).
CREATE TABLE sms_metrics_daily (
  metric_date date PRIMARY KEY,
  scheduled_count integer NOT NULL,
  sent_count integer NOT NULL,
  delivered_count integer NOT NULL,
  failed_count integer NOT NULL,
  cancelled_count integer NOT NULL,
  avg_delivery_time_ms numeric,
  avg_generation_time_ms numeric,
  llm_success_count integer NOT NULL,
  template_fallback_count integer NOT NULL,
  delivery_success_rate numeric,
  llm_success_rate numeric,
  llm_cost_usd numeric NOT NULL,
  sms_cost_usd numeric NOT NULL,
  opt_out_count integer NOT NULL,
  quiet_hours_skip_count integer NOT NULL,
  daily_limit_hit_count integer NOT NULL,
  delivery_rate_percent numeric,
  llm_success_rate_percent numeric,
  active_users integer NOT NULL,
  refreshed_at timestamptz NOT NULL DEFAULT now()
);

-- * email_suppressions: addresses that must not be emailed, per scope (the seed
--   platform's vocabularies), one row per normalised address.
CREATE TABLE email_suppressions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email text NOT NULL UNIQUE
    CHECK (email <> '' AND email = lower(btrim(email)) AND length(email) <= 320),
  scope text NOT NULL CHECK (scope IN ('lifecycle', 'marketing', 'daily_brief', 'all')),
  reason text NOT NULL CHECK (reason IN ('unsubscribe', 'hard_bounce', 'manual', 'complaint')),
  source text NOT NULL
    CHECK (source IN ('email_link', 'admin', 'provider_webhook', 'list_header')),
  metadata jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Access to the new tables: service_role only (their functions are SECURITY INVOKER).
DO $access$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['sms_daily_counts', 'sms_metrics', 'sms_metrics_daily',
                           'email_suppressions'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('REVOKE ALL ON %I FROM PUBLIC, anon, authenticated', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO service_role', t);
    EXECUTE format('CREATE POLICY service_role_all ON %I FOR ALL TO service_role '
                   'USING (true) WITH CHECK (true)', t);
  END LOOP;
END
$access$;
