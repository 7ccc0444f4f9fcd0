-- get_delivery_status_counts: deliveries per channel and current status over a recent
-- window, what /metrics exports as notify_deliveries{channel,status}.
--
-- Guarantees: one row per channel and status with at least one delivery created since
-- the start of the 15-minute slice holding now() - p_interval (so the window is
-- p_interval rounded up to whole slices: up to 15 minutes longer), counted by current
-- status. Exact: it sums delivery_status_rollup (0011), which triggers keep equal to a
-- COUNT(*) of the deliveries per slice, channel and status in the writers' own
-- transactions. The cost is the window's slices x channels x statuses (x writer
-- sessions not yet compacted), never its deliveries: flat in the table's size, cheap
-- enough for a scrape every 15 s. Read-only; a bad p_interval raises 22023 first.
CREATE FUNCTION @schema@.get_delivery_status_counts(p_interval text DEFAULT '24 hours')
RETURNS TABLE (channel text, status text, deliveries bigint)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  v_from timestamptz := delivery_funnel_slice(now() - check_window('p_interval', p_interval));
BEGIN
  RETURN QUERY
  SELECT r.channel, r.status, sum(r.deliveries)::bigint
  FROM delivery_status_rollup r
  WHERE r.slice_start >= v_from
  GROUP BY r.channel, r.status
  HAVING sum(r.deliveries) <> 0
  ORDER BY r.channel, r.status;
END;
$$;

COMMENT ON FUNCTION @schema@.get_delivery_status_counts(text) IS
  'Deliveries per channel and current status created since the 15-minute slice holding now() - p_interval (exact, read from delivery_status_rollup; flat in table size). Raises 22023 (p_interval) unless p_interval is a positive interval.';

GRANT EXECUTE ON FUNCTION @schema@.get_delivery_status_counts(text) TO service_role;
GRANT EXECUTE ON FUNCTION @schema@.get_delivery_status_counts(text) TO notify_sql_monitor;
