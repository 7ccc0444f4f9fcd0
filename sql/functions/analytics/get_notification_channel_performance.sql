-- get_notification_channel_performance: the delivery funnel per channel for the
-- deliveries created within p_interval of now().
--
-- Guarantees: one row per channel (all four, zero counts and NULL rates for a channel
-- with no deliveries in the window), most sent first; the funnel definitions are those
-- of analytics_delivery_funnel (rates rounded to 2 places, NULL on a zero denominator,
-- never above 100). Read-only. A bad p_interval raises 22023 before anything is read.
CREATE FUNCTION @schema@.get_notification_channel_performance(p_interval text DEFAULT '7 days')
RETURNS TABLE (
  channel text,
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
  avg_delivery_time_ms numeric
)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  v_since timestamptz := now() - check_window('p_interval', p_interval);
BEGIN
  RETURN QUERY
  SELECT f.channel, f.total_sent, f.sent, f.delivered, f.opened, f.clicked, f.failed,
         f.success_rate, f.delivery_rate, f.open_rate, f.click_rate, f.avg_delivery_time_ms
  FROM analytics_delivery_funnel(v_since, NULL, NULL, true, NULL) f
  ORDER BY f.total_sent DESC, f.channel;
END;
$$;

COMMENT ON FUNCTION @schema@.get_notification_channel_performance(text) IS
  'Delivery funnel per channel (all four channels) for deliveries created within p_interval of now(); rates rounded to 2 places, NULL on a zero denominator, never above 100. Raises 22023 (p_interval) unless p_interval is a positive interval.';

GRANT EXECUTE ON FUNCTION @schema@.get_notification_channel_performance(text) TO service_role;
GRANT EXECUTE ON FUNCTION @schema@.get_notification_channel_performance(text) TO notify_sql_monitor;
