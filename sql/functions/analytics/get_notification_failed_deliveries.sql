-- get_notification_failed_deliveries: the latest failed deliveries for an admin list
-- (the seed platform's name, arguments and columns).
--
-- Up to p_limit deliveries created within p_interval of now() whose status is failed
-- or bounced (the funnel's `failed`; the platform listed `failed` only), newest first,
-- with their event type. recipient_email is the delivery's address when it is an
-- email delivery (this install keeps no users table; the platform joined one).
-- Read-only; a bad p_interval or p_limit outside 1..1000 raises 22023 naming it.
CREATE FUNCTION @schema@.get_notification_failed_deliveries(
  p_interval text DEFAULT '24 hours',
  p_limit integer DEFAULT 100
)
RETURNS TABLE (
  delivery_id uuid,
  event_id uuid,
  event_type text,
  channel text,
  recipient_user_id uuid,
  recipient_email text,
  last_error text,
  attempts integer,
  max_attempts integer,
  created_at timestamptz,
  failed_at timestamptz
)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
DECLARE
  v_since timestamptz := now() - check_window('p_interval', p_interval);
BEGIN
  PERFORM check_batch_size('p_limit', p_limit, 1000);
  RETURN QUERY
  SELECT d.id, d.event_id, e.event_type, d.channel, d.recipient_user_id,
         CASE WHEN d.channel = 'email' THEN d.channel_identifier END,
         d.last_error, d.attempts, d.max_attempts, d.created_at, d.failed_at
  FROM (SELECT f.*
        FROM notification_deliveries f
        WHERE f.created_at > v_since
          AND f.status IN ('failed', 'bounced')
        ORDER BY f.created_at DESC, f.id
        LIMIT p_limit) AS d
  LEFT JOIN notification_events e ON e.id = d.event_id
  ORDER BY d.created_at DESC, d.id;
END;
$$;

COMMENT ON FUNCTION @schema@.get_notification_failed_deliveries(text, integer) IS 'Up to p_limit failed or bounced deliveries created within p_interval of now(), newest first, with event type, error and attempts. Raises 22023 naming p_interval or p_limit when invalid.';

GRANT EXECUTE ON FUNCTION @schema@.get_notification_failed_deliveries(text, integer) TO service_role;
