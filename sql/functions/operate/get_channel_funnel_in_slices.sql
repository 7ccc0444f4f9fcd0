-- get_channel_funnel_in_slices: the delivery funnel per channel over a recent window
-- rounded up to whole 15-minute slices, what the console overview shows.
--
-- Guarantees: the rows, columns, order and definitions of
-- get_notification_channel_performance, for the deliveries created since the start of
-- the slice holding now() - p_interval (up to 15 minutes more than p_interval). Read
-- from the funnel sums of 0005 alone, with no edge slice read from the deliveries, so
-- its cost does not grow with the table: an overview at 10M deliveries costs what it
-- costs at ten. Read-only; a bad p_interval raises 22023 before anything is read.
CREATE FUNCTION @schema@.get_channel_funnel_in_slices(p_interval text DEFAULT '24 hours')
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
  v_since timestamptz := delivery_funnel_slice(now() - check_window('p_interval', p_interval));
BEGIN
  RETURN QUERY
  SELECT f.channel, f.total_sent, f.sent, f.delivered, f.opened, f.clicked, f.failed,
         f.success_rate, f.delivery_rate, f.open_rate, f.click_rate, f.avg_delivery_time_ms
  FROM analytics_delivery_funnel(v_since) f
  ORDER BY f.total_sent DESC, f.channel;
END;
$$;

COMMENT ON FUNCTION @schema@.get_channel_funnel_in_slices(text) IS
  'Delivery funnel per channel (as get_notification_channel_performance) for deliveries created since the 15-minute slice holding now() - p_interval; read from the funnel sums only, flat in table size. Raises 22023 (p_interval) unless p_interval is a positive interval.';

GRANT EXECUTE ON FUNCTION @schema@.get_channel_funnel_in_slices(text) TO service_role;
GRANT EXECUTE ON FUNCTION @schema@.get_channel_funnel_in_slices(text) TO notify_sql_monitor;
