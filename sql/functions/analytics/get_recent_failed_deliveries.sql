-- get_recent_failed_deliveries: the latest failures with their errors, for operators.
--
-- Guarantees: at most p_limit (1..1000) deliveries created within p_interval of now()
-- whose status is failed or bounced, most recently failed first (failed_at, else
-- updated_at), with the event type, the provider reference and last_error. Read through
-- notification_deliveries_failed_idx (0011: failed and bounced rows by that very order),
-- so the walk stops after p_limit rows of the window instead of reading the window's
-- deliveries; when the window holds fewer failures than p_limit the planner may read the
-- window through the created_at index instead. Read-only; bad arguments raise 22023.
CREATE FUNCTION @schema@.get_recent_failed_deliveries(
  p_limit integer DEFAULT 50,
  p_interval text DEFAULT '7 days'
)
RETURNS TABLE (
  delivery_id uuid,
  event_id uuid,
  event_type text,
  recipient_user_id uuid,
  channel text,
  status text,
  attempts integer,
  last_error text,
  external_id text,
  created_at timestamptz,
  failed_at timestamptz,
  updated_at timestamptz
)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
#variable_conflict use_column
DECLARE
  v_since timestamptz := now() - check_window('p_interval', p_interval);
BEGIN
  PERFORM check_batch_size('p_limit', p_limit, 1000);
  RETURN QUERY
  -- Limit first, then look up the event types of the p_limit rows kept.
  SELECT d.id, d.event_id, e.event_type, d.recipient_user_id, d.channel, d.status,
         d.attempts, d.last_error, d.external_id, d.created_at, d.failed_at, d.updated_at
  FROM (SELECT f.*
        FROM notification_deliveries f
        WHERE f.created_at >= v_since
          AND f.status IN ('failed', 'bounced')
        ORDER BY coalesce(f.failed_at, f.updated_at) DESC, f.id
        LIMIT p_limit) AS d
  LEFT JOIN notification_events e ON e.id = d.event_id
  ORDER BY coalesce(d.failed_at, d.updated_at) DESC, d.id;
END;
$$;

COMMENT ON FUNCTION @schema@.get_recent_failed_deliveries(integer, text) IS
  'Up to p_limit failed or bounced deliveries created within p_interval of now(), most recently failed first, with event type and last_error. Raises 22023 naming p_limit (1..1000) or p_interval when invalid.';

GRANT EXECUTE ON FUNCTION @schema@.get_recent_failed_deliveries(integer, text) TO service_role;
GRANT EXECUTE ON FUNCTION @schema@.get_recent_failed_deliveries(integer, text) TO notify_sql_monitor;
