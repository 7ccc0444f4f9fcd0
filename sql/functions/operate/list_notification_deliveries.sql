-- list_notification_deliveries: one page of deliveries for the console's /deliveries.
--
-- Newest first, keyset pagination on (created_at, id): the next page starts strictly
-- after the cursor (p_before_created_at, p_before_id), which is a range condition on
-- notification_deliveries_created_at_idx (0003), so page 1,000 costs what page 1 does
-- at any table size (no OFFSET). Filters: status, channel, recipient, creation time
-- range; p_q finds a delivery by id, event id, recipient, correlation id, external id
-- or the event's type (exact matches; the id-like ones use their indexes). NULL means
-- "any". Plans are made per call (force_custom_plan), so an absent filter costs nothing.
CREATE FUNCTION @schema@.list_notification_deliveries(
  p_status text DEFAULT NULL,
  p_channel text DEFAULT NULL,
  p_user_id uuid DEFAULT NULL,
  p_from timestamptz DEFAULT NULL,
  p_to timestamptz DEFAULT NULL,
  p_q text DEFAULT NULL,
  p_before_created_at timestamptz DEFAULT NULL,
  p_before_id uuid DEFAULT NULL,
  p_limit integer DEFAULT 50)
RETURNS TABLE (
  id uuid, event_id uuid, event_type text, recipient_user_id uuid, channel text, status text,
  attempts integer, created_at timestamptz, sent_at timestamptz, delivered_at timestamptz,
  opened_at timestamptz, clicked_at timestamptz, failed_at timestamptz, last_error text,
  external_id text, correlation_id text)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
  v_q text := nullif(btrim(p_q), '');
  v_q_uuid uuid;
BEGIN
  PERFORM check_text('p_status', p_status, 20, false);
  PERFORM check_text('p_channel', p_channel, 20, false);
  PERFORM check_text('p_q', p_q, 200, false);
  PERFORM check_batch_size('p_limit', p_limit, 500);
  IF (p_before_created_at IS NULL) <> (p_before_id IS NULL) THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_before_created_at: give it together with p_before_id, or neither';
  END IF;
  IF v_q ~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$' THEN
    v_q_uuid := v_q::uuid;
  END IF;
  RETURN QUERY
  SELECT d.id, d.event_id, e.event_type, d.recipient_user_id, d.channel, d.status, d.attempts,
         d.created_at, d.sent_at, d.delivered_at, d.opened_at, d.clicked_at, d.failed_at,
         d.last_error, d.external_id, d.correlation_id
  FROM notification_deliveries d
  LEFT JOIN notification_events e ON e.id = d.event_id
  WHERE (p_status IS NULL OR d.status = p_status)
    AND (p_channel IS NULL OR d.channel = p_channel)
    AND (p_user_id IS NULL OR d.recipient_user_id = p_user_id)
    AND (p_from IS NULL OR d.created_at >= p_from)
    AND (p_to IS NULL OR d.created_at < p_to)
    AND (p_before_created_at IS NULL OR (d.created_at, d.id) < (p_before_created_at, p_before_id))
    AND (v_q IS NULL
         OR d.id = v_q_uuid OR d.event_id = v_q_uuid OR d.recipient_user_id = v_q_uuid
         OR d.correlation_id = v_q OR d.external_id = v_q OR e.event_type = v_q)
  ORDER BY d.created_at DESC, d.id DESC
  LIMIT p_limit;
END;
$$;

COMMENT ON FUNCTION @schema@.list_notification_deliveries(text, text, uuid, timestamptz, timestamptz, text, timestamptz, uuid, integer) IS
  'One page of deliveries, newest first, filtered (NULL: any) and searched (p_q: id, event id, recipient, correlation id, external id, event type); pass the last row''s (created_at, id) as the cursor for the next page. 22023 on over-long text, a half cursor or a limit outside 1..500.';

GRANT EXECUTE ON FUNCTION @schema@.list_notification_deliveries(text, text, uuid, timestamptz, timestamptz, text, timestamptz, uuid, integer) TO service_role;
GRANT EXECUTE ON FUNCTION @schema@.list_notification_deliveries(text, text, uuid, timestamptz, timestamptz, text, timestamptz, uuid, integer) TO notify_sql_monitor;
