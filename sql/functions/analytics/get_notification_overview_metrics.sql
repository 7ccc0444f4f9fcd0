-- get_notification_overview_metrics: headline delivery figures of one window (the seed
-- platform's name, arguments and columns; its dashboard calls it twice, with p_offset =
-- p_interval for the previous period, to show trends).
--
-- Window: deliveries created in [now() - p_offset - p_interval, now() - p_offset), so
-- the current window (p_offset zero) and the previous one (p_offset = p_interval) never
-- overlap. Figures follow this project's funnel definitions (analytics_delivery_funnel),
-- not the platform's current-status counts, under which an opened message stopped
-- counting as delivered: total_sent = every delivery but cancelled,
-- delivery_success_rate = delivery_rate (100 * delivered / sent), avg_open_rate =
-- open_rate, avg_click_rate = click_rate; rounded to 2 places, NULL on a zero
-- denominator, never above 100. One row. Read-only; a bad p_interval or p_offset
-- (p_offset may be zero) raises 22023 naming it.
CREATE FUNCTION @schema@.get_notification_overview_metrics(
  p_interval text DEFAULT '24 hours',
  p_offset text DEFAULT '0 hours'
)
RETURNS TABLE (
  total_sent integer,
  delivery_success_rate numeric,
  avg_open_rate numeric,
  avg_click_rate numeric
)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
DECLARE
  v_interval interval := check_window('p_interval', p_interval);
  v_offset interval := interval '0';
  v_zero boolean;
  v_until timestamptz;
  v_since timestamptz;
BEGIN
  BEGIN
    v_zero := p_offset::interval = interval '0';
  EXCEPTION WHEN data_exception THEN
    v_zero := false;  -- check_window names the problem
  END;
  IF NOT coalesce(v_zero, false) THEN
    v_offset := check_window('p_offset', p_offset);
  END IF;
  BEGIN
    v_until := now() - v_offset;
    v_since := v_until - v_interval;
  EXCEPTION WHEN data_exception THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_offset: with p_interval, the window starts out of range';
  END;
  RETURN QUERY
  SELECT f.total_sent::integer, f.delivery_rate, f.open_rate, f.click_rate
  FROM analytics_delivery_funnel(v_since, v_until, NULL, false, NULL) f;
END;
$$;

COMMENT ON FUNCTION @schema@.get_notification_overview_metrics(text, text) IS 'One row for deliveries created in [now() - p_offset - p_interval, now() - p_offset): total_sent and the delivery, open and click rates of the project''s funnel (NULL on a zero denominator). Raises 22023 naming p_interval or p_offset when invalid.';

GRANT EXECUTE ON FUNCTION @schema@.get_notification_overview_metrics(text, text) TO service_role;
