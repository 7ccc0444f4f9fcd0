-- get_notification_event_performance: how each event type performed.
--
-- Window: events created within p_interval of now(), with their deliveries created in
-- the same window. A delivery is created with its event (never before it), so for real
-- data this is "every delivery of those events"; bounding both sides by created_at lets
-- each be read through its created_at index instead of joining the whole table.
--
-- Per event type: total_events (events in the window, with or without deliveries),
-- total_deliveries (all their deliveries, whatever the status), unique_subscribers
-- (distinct recipients), avg_delivery_time_seconds (mean sent_at - created_at over
-- deliveries with a sent_at), open_rate and click_rate with the funnel definitions of
-- analytics_delivery_funnel (opened and clicked only count deliveries that reached
-- sent, a click implies an open, so neither rate exceeds 100). Most events first.
-- Read-only; a bad p_interval raises 22023.
CREATE FUNCTION @schema@.get_notification_event_performance(p_interval text DEFAULT '30 days')
RETURNS TABLE (
  event_type text,
  total_events bigint,
  total_deliveries bigint,
  unique_subscribers bigint,
  avg_delivery_time_seconds numeric,
  open_rate numeric,
  click_rate numeric
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
  RETURN QUERY
  WITH events AS (
    SELECT e.event_type, count(*) AS total_events
    FROM notification_events e
    WHERE e.created_at >= v_since
    GROUP BY e.event_type
  ),
  -- Grouped by (type, recipient) first: the distinct recipient count then falls out of
  -- a hash aggregate instead of a sort of every delivery.
  per_recipient AS (
    SELECT e.event_type,
           count(*) AS deliveries,
           count(*) FILTER (WHERE d.status IN ('sent', 'delivered', 'opened', 'clicked')) AS sent,
           count(*) FILTER (WHERE d.status IN ('sent', 'delivered', 'opened', 'clicked')
                              AND (d.opened_at IS NOT NULL OR d.clicked_at IS NOT NULL)) AS opened,
           count(*) FILTER (WHERE d.status IN ('sent', 'delivered', 'opened', 'clicked')
                              AND d.clicked_at IS NOT NULL) AS clicked,
           -- Whole microseconds, summed exactly in integers (see analytics_delivery_funnel).
           sum(round(date_part('epoch', d.sent_at - d.created_at) * 1e6)::bigint)
             FILTER (WHERE d.sent_at IS NOT NULL) AS sent_us,
           count(*) FILTER (WHERE d.sent_at IS NOT NULL) AS with_sent_at
    FROM notification_deliveries d
    JOIN notification_events e ON e.id = d.event_id
    WHERE d.created_at >= v_since
      AND e.created_at >= v_since
    GROUP BY e.event_type, d.recipient_user_id
  ),
  deliveries AS (
    SELECT r.event_type,
           sum(r.deliveries)::bigint AS total_deliveries,
           count(*) AS unique_subscribers,
           sum(r.sent) AS sent,
           sum(r.opened) AS opened,
           sum(r.clicked) AS clicked,
           sum(r.sent_us) / nullif(sum(r.with_sent_at), 0) / 1000000 AS avg_sent_seconds
    FROM per_recipient r
    GROUP BY r.event_type
  )
  SELECT ev.event_type,
         ev.total_events,
         coalesce(dl.total_deliveries, 0),
         coalesce(dl.unique_subscribers, 0),
         round(dl.avg_sent_seconds, 2),
         round(100.0 * dl.opened / nullif(dl.sent, 0), 2),
         round(100.0 * dl.clicked / nullif(dl.opened, 0), 2)
  FROM events ev
  LEFT JOIN deliveries dl ON dl.event_type = ev.event_type
  ORDER BY ev.total_events DESC, ev.event_type;
END;
$$;

COMMENT ON FUNCTION @schema@.get_notification_event_performance(text) IS
  'Per event type: events created within p_interval of now(), their deliveries, distinct recipients, mean seconds to sent, open and click rates (rounded to 2 places, NULL on a zero denominator, never above 100). Raises 22023 (p_interval) unless p_interval is a positive interval.';

GRANT EXECUTE ON FUNCTION @schema@.get_notification_event_performance(text) TO service_role;
