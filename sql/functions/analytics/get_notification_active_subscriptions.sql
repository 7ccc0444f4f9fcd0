-- get_notification_active_subscriptions: every user with an active subscription, for
-- an admin list (the seed platform's name and columns).
--
-- One row per user holding at least one active notification_subscriptions row: the
-- event types they are subscribed to (sorted), whether each channel is on for them
-- (enabled and not opted out in notification_preferences; no row means on, the same
-- rule emit_notification_event applies) and when their latest delivery was created
-- (NULL if none), latest first. email and name are NULL: this install keeps no users
-- table (the platform joined one). Read-only; takes no argument.
CREATE FUNCTION @schema@.get_notification_active_subscriptions()
RETURNS TABLE (
  user_id uuid,
  email text,
  name text,
  subscribed_events text[],
  push_enabled boolean,
  email_enabled boolean,
  sms_enabled boolean,
  in_app_enabled boolean,
  last_notification_sent timestamptz
)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
  SELECT s.user_id, NULL::text, NULL::text, s.events, c.push, c.email, c.sms, c.in_app,
         (SELECT max(d.created_at) FROM notification_deliveries d
          WHERE d.recipient_user_id = s.user_id)
  FROM (SELECT ns.user_id, array_agg(ns.event_type ORDER BY ns.event_type) AS events
        FROM notification_subscriptions ns
        WHERE ns.is_active
        GROUP BY ns.user_id) AS s
  CROSS JOIN LATERAL (
    SELECT coalesce(bool_and(p.enabled AND NOT p.opted_out) FILTER (WHERE p.channel = 'push'), true),
           coalesce(bool_and(p.enabled AND NOT p.opted_out) FILTER (WHERE p.channel = 'email'), true),
           coalesce(bool_and(p.enabled AND NOT p.opted_out) FILTER (WHERE p.channel = 'sms'), true),
           coalesce(bool_and(p.enabled AND NOT p.opted_out) FILTER (WHERE p.channel = 'in_app'), true)
    FROM notification_preferences p
    WHERE p.user_id = s.user_id) AS c (push, email, sms, in_app)
  ORDER BY 9 DESC NULLS LAST, s.user_id
$$;

COMMENT ON FUNCTION @schema@.get_notification_active_subscriptions() IS 'One row per user with an active subscription: subscribed event types, per-channel on/off (preferences; no row means on), latest delivery time; latest first. email and name are NULL (no users table).';

GRANT EXECUTE ON FUNCTION @schema@.get_notification_active_subscriptions() TO service_role;
