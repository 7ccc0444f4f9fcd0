-- 0002_deliveries: events, deliveries, SMS messages, channel preferences, SMS short
-- links, the provider callback log and the trace log.
--
-- One state model for every delivery (docs/delivery-states.md). Status columns hold
-- the same vocabulary in every table (CHECK), and the order of that vocabulary is
-- defined once, in the function delivery_status_rank(); Twilio's own vocabulary and
-- order live in twilio_status_rank() and its mapping in twilio_delivery_status().
-- The CHECK lists below only say which words are valid; no code here ranks them.
--
-- Writes that move a status go through the provider-update functions, which lock
-- rows in the order sms_links / sms_messages -> notification_deliveries and only ever
-- move a status up the ranking, so concurrent callbacks serialise and never undo
-- each other.

-- Events: what happened, once. Deliveries fan out from here.
CREATE TABLE notification_events (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  event_type text NOT NULL CHECK (event_type <> ''),
  event_source text NOT NULL DEFAULT 'api',
  actor_user_id uuid,
  target_user_id uuid,
  payload jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(payload) = 'object'),
  metadata jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
  correlation_id text NOT NULL DEFAULT gen_random_uuid()::text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notification_events_created_at_idx ON notification_events (created_at);
CREATE INDEX notification_events_correlation_id_idx ON notification_events (correlation_id);
CREATE INDEX notification_events_target_user_id_idx ON notification_events (target_user_id);

-- Deliveries: one per event, recipient and channel. Inserting only recipient_user_id
-- and channel works: every other column has a default or is nullable.
CREATE TABLE notification_deliveries (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  event_id uuid REFERENCES notification_events (id) ON DELETE CASCADE,
  recipient_user_id uuid NOT NULL,
  channel text NOT NULL CHECK (channel IN ('email', 'sms', 'push', 'in_app')),
  channel_identifier text,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN (
    'pending', 'sent', 'cancelled', 'failed', 'delivered', 'bounced', 'opened', 'clicked')),
  payload jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(payload) = 'object'),
  attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  max_attempts integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
  sent_at timestamptz,
  delivered_at timestamptz,
  opened_at timestamptz,
  clicked_at timestamptz,
  failed_at timestamptz,
  open_count integer NOT NULL DEFAULT 0 CHECK (open_count >= 0),
  click_count integer NOT NULL DEFAULT 0 CHECK (click_count >= 0),
  last_error text,
  external_id text,
  -- 122 random bits, hex: unguessable, URL-safe, fits an email tracking pixel URL.
  tracking_id text NOT NULL DEFAULT replace(gen_random_uuid()::text, '-', '') UNIQUE,
  correlation_id text NOT NULL DEFAULT gen_random_uuid()::text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notification_deliveries_event_id_idx ON notification_deliveries (event_id);
CREATE INDEX notification_deliveries_recipient_idx
  ON notification_deliveries (recipient_user_id, created_at);
CREATE INDEX notification_deliveries_channel_created_at_idx
  ON notification_deliveries (channel, created_at);
CREATE INDEX notification_deliveries_correlation_id_idx
  ON notification_deliveries (correlation_id);
CREATE INDEX notification_deliveries_external_id_idx
  ON notification_deliveries (external_id) WHERE external_id IS NOT NULL;

-- SMS messages: the Twilio side of an SMS delivery. `status` uses the delivery
-- vocabulary (so it can never disagree in kind with notification_deliveries);
-- `twilio_status` keeps Twilio's own word, the highest-ranked one received.
CREATE TABLE sms_messages (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL,
  notification_delivery_id uuid REFERENCES notification_deliveries (id) ON DELETE SET NULL,
  phone_number text NOT NULL CHECK (phone_number <> ''),
  message_content text NOT NULL,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN (
    'pending', 'sent', 'cancelled', 'failed', 'delivered', 'bounced', 'opened', 'clicked')),
  twilio_sid text,
  twilio_status text CHECK (twilio_status IN (
    'accepted', 'scheduled', 'queued', 'sending', 'sent', 'canceled', 'failed',
    'undelivered', 'delivered', 'read')),
  twilio_error_code integer,
  twilio_error_message text,
  priority text NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
  attempt_count integer NOT NULL DEFAULT 0 CHECK (attempt_count >= 0),
  max_attempts integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
  sent_at timestamptz,
  delivered_at timestamptz,
  failed_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- A Twilio SID names one message: unique, and the fallback lookup of every callback.
CREATE UNIQUE INDEX sms_messages_twilio_sid_key
  ON sms_messages (twilio_sid) WHERE twilio_sid IS NOT NULL;
CREATE INDEX sms_messages_delivery_id_idx ON sms_messages (notification_delivery_id);
CREATE INDEX sms_messages_user_id_idx ON sms_messages (user_id, created_at);
CREATE INDEX sms_messages_created_at_idx ON sms_messages (created_at);

-- Channel preferences: one row per user and channel; no row means enabled and not
-- opted out. The phone number and its verification belong to the sms row only.
CREATE TABLE notification_preferences (
  user_id uuid NOT NULL,
  channel text NOT NULL CHECK (channel IN ('email', 'sms', 'push', 'in_app')),
  enabled boolean NOT NULL DEFAULT true,
  opted_out boolean NOT NULL DEFAULT false,
  opted_out_at timestamptz,
  opt_out_reason text,
  phone_number text CHECK (phone_number <> ''),
  phone_verified boolean NOT NULL DEFAULT false,
  phone_verified_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, channel),
  CONSTRAINT notification_preferences_phone_is_sms
    CHECK (channel = 'sms' OR (phone_number IS NULL AND NOT phone_verified)),
  CONSTRAINT notification_preferences_verified_needs_phone
    CHECK (NOT phone_verified OR phone_number IS NOT NULL)
);
CREATE INDEX notification_preferences_channel_idx ON notification_preferences (channel);

-- Short links for SMS: short code -> delivery + target url. One link per
-- (delivery, url), so a retried send reuses its code.
CREATE TABLE sms_links (
  short_code text PRIMARY KEY CHECK (short_code ~ '^[A-Za-z0-9_-]{6,32}$'),
  delivery_id uuid NOT NULL REFERENCES notification_deliveries (id) ON DELETE CASCADE,
  url text NOT NULL CHECK (url ~* '^https?://[^\s/?#]+[^\s]*$'),
  click_count integer NOT NULL DEFAULT 0 CHECK (click_count >= 0),
  first_clicked_at timestamptz,
  last_clicked_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT sms_links_delivery_url_key UNIQUE (delivery_id, url)
);

-- Every provider callback received (Twilio status, email event, SMS link click), in
-- the transaction that applied it: what arrived, when, and whether it changed
-- anything. Append-only: service_role may insert, read and delete (retention) but not
-- update, so what was received can never be rewritten by the application.
CREATE TABLE provider_callbacks (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  received_at timestamptz NOT NULL DEFAULT now(),
  provider text NOT NULL CHECK (provider IN ('twilio', 'email', 'sms_link')),
  event text NOT NULL,
  reference text,
  occurred_at timestamptz,
  sms_message_id uuid,
  delivery_id uuid,
  correlation_id text,
  payload jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
  changed boolean NOT NULL
);
CREATE INDEX provider_callbacks_received_at_idx ON provider_callbacks USING brin (received_at);
CREATE INDEX provider_callbacks_delivery_id_idx
  ON provider_callbacks (delivery_id) WHERE delivery_id IS NOT NULL;
CREATE INDEX provider_callbacks_sms_message_id_idx
  ON provider_callbacks (sms_message_id) WHERE sms_message_id IS NOT NULL;
CREATE INDEX provider_callbacks_correlation_id_idx
  ON provider_callbacks (correlation_id) WHERE correlation_id IS NOT NULL;

-- The trace log: one correlation id follows an event through its deliveries, their
-- queue jobs (metadata->>'correlation_id') and provider callbacks.
CREATE TABLE notification_logs (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now(),
  level text NOT NULL DEFAULT 'info' CHECK (level IN ('debug', 'info', 'warn', 'error')),
  message text NOT NULL,
  metadata jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
  correlation_id text,
  event_id uuid,
  delivery_id uuid,
  queue_job_id uuid,
  source text
);
CREATE INDEX notification_logs_created_at_idx ON notification_logs USING brin (created_at);
CREATE INDEX notification_logs_correlation_id_idx
  ON notification_logs (correlation_id) WHERE correlation_id IS NOT NULL;
CREATE INDEX notification_logs_event_id_idx
  ON notification_logs (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX notification_logs_delivery_id_idx
  ON notification_logs (delivery_id) WHERE delivery_id IS NOT NULL;

-- Access: service_role only (the functions are SECURITY INVOKER).
ALTER TABLE notification_events ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON notification_events FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON notification_events TO service_role;
CREATE POLICY service_role_all ON notification_events FOR ALL TO service_role USING (true) WITH CHECK (true);

ALTER TABLE notification_deliveries ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON notification_deliveries FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON notification_deliveries TO service_role;
CREATE POLICY service_role_all ON notification_deliveries FOR ALL TO service_role USING (true) WITH CHECK (true);

ALTER TABLE sms_messages ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON sms_messages FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON sms_messages TO service_role;
CREATE POLICY service_role_all ON sms_messages FOR ALL TO service_role USING (true) WITH CHECK (true);

ALTER TABLE notification_preferences ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON notification_preferences FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON notification_preferences TO service_role;
CREATE POLICY service_role_all ON notification_preferences FOR ALL TO service_role USING (true) WITH CHECK (true);

ALTER TABLE sms_links ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON sms_links FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON sms_links TO service_role;
CREATE POLICY service_role_all ON sms_links FOR ALL TO service_role USING (true) WITH CHECK (true);

ALTER TABLE provider_callbacks ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON provider_callbacks FROM PUBLIC, anon, authenticated;
-- No UPDATE: the callback log is append-only.
GRANT SELECT, INSERT, DELETE ON provider_callbacks TO service_role;
CREATE POLICY service_role_all ON provider_callbacks FOR ALL TO service_role USING (true) WITH CHECK (true);

ALTER TABLE notification_logs ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON notification_logs FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON notification_logs TO service_role;
CREATE POLICY service_role_all ON notification_logs FOR ALL TO service_role USING (true) WITH CHECK (true);
