-- get_notification_delivery_timeline: the delivery funnel over time, for charts.
--
-- Guarantees: one row per hour or day bucket (session time zone) from the bucket
-- holding now() - p_interval to the one holding now(), gapless (empty buckets have zero
-- counts and NULL rates), oldest first; p_channel NULL counts every channel, otherwise
-- only that one. The first bucket only counts rows inside the window. Funnel
-- definitions are those of analytics_delivery_funnel. Read-only; a bad p_interval,
-- p_granularity or p_channel raises 22023 naming it, and so does a window of more than
-- 10,000 buckets (p_granularity: e.g. hourly over more than 416 days).
-- time_bucket repeats bucket_start under the seed platform's column name, which its
-- admin dashboard reads (with sent, delivered, opened, clicked, failed).
CREATE FUNCTION @schema@.get_notification_delivery_timeline(
  p_interval text DEFAULT '7 days',
  p_granularity text DEFAULT 'day',
  p_channel text DEFAULT NULL
)
RETURNS TABLE (
  bucket_start timestamptz,
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
  avg_time_to_delivered_seconds numeric,
  time_bucket timestamptz
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
  IF p_granularity IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_granularity: is required (''hour'' or ''day'')';
  END IF;
  RETURN QUERY
  SELECT f.bucket, f.total_sent, f.sent, f.delivered, f.opened, f.clicked, f.failed,
         f.success_rate, f.delivery_rate, f.open_rate, f.click_rate,
         f.avg_delivery_time_ms, f.avg_time_to_delivered_seconds, f.bucket
  FROM analytics_delivery_funnel(v_since, NULL, p_granularity, false, p_channel) f
  ORDER BY f.bucket;
END;
$$;

COMMENT ON FUNCTION @schema@.get_notification_delivery_timeline(text, text, text) IS
  'Delivery funnel per hour or day bucket (bucket_start, also as time_bucket) over the last p_interval, gapless, oldest first, optionally for one channel. Raises 22023 naming p_interval, p_granularity (hour or day; at most 10000 buckets) or p_channel when invalid.';

GRANT EXECUTE ON FUNCTION @schema@.get_notification_delivery_timeline(text, text, text) TO service_role;
