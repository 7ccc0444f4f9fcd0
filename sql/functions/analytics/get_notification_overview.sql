-- get_notification_overview: dashboard totals for the current window and the one
-- before it ("vs last week").
--
-- Guarantees: exactly two rows, 'current' (deliveries created since now() - p_interval,
-- the same rows get_notification_channel_performance counts, so its per-channel counts
-- sum to this row) then 'previous' (created in [now() - 2 * p_interval,
-- now() - p_interval), windows that never overlap). Funnel definitions are those of
-- analytics_delivery_funnel. Read-only; a bad p_interval raises 22023.
CREATE FUNCTION @schema@.get_notification_overview(p_interval text DEFAULT '7 days')
RETURNS TABLE (
  period text,
  period_start timestamptz,
  period_end timestamptz,
  total_sent bigint,
  sent bigint,
  delivered bigint,
  opened bigint,
  clicked bigint,
  failed bigint,
  success_rate numeric,
  delivery_rate numeric,
  open_rate numeric,
  click_rate numeric,
  avg_delivery_time_ms numeric,
  avg_time_to_delivered_seconds numeric
)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  v_interval interval := check_window('p_interval', p_interval);
  v_since timestamptz := now() - v_interval;
BEGIN
  RETURN QUERY
  SELECT p.period, p.period_start, coalesce(p.period_end, now()),
         f.total_sent, f.sent, f.delivered, f.opened, f.clicked, f.failed,
         f.success_rate, f.delivery_rate, f.open_rate, f.click_rate,
         f.avg_delivery_time_ms, f.avg_time_to_delivered_seconds
  FROM (VALUES (1, 'current', v_since, NULL::timestamptz),
               (2, 'previous', v_since - v_interval, v_since))
         AS p(position, period, period_start, period_end)
  CROSS JOIN LATERAL analytics_delivery_funnel(p.period_start, p.period_end, NULL, false, NULL) f
  ORDER BY p.position;
END;
$$;

COMMENT ON FUNCTION @schema@.get_notification_overview(text) IS
  'Delivery funnel totals for the current window (created within p_interval of now()) and the previous window of the same length: two rows, current first. Raises 22023 (p_interval) unless p_interval is a positive interval.';

GRANT EXECUTE ON FUNCTION @schema@.get_notification_overview(text) TO service_role;
