-- get_user_sms_metrics: one user's whole-day SMS metrics for the last p_days days,
-- newest first (the seed platform's name, arguments and columns).
--
-- Computed from sms_metrics directly (no refresh needed): counts are sums of their
-- metric type; delivery_rate = 100 * delivered / sent, rounded to 2 places, NULL when
-- nothing was sent (the platform wrote 0) and never above 100. Days without metrics
-- have no row. Read-only; a NULL user or p_days outside 1..3660 raises 22023.
CREATE FUNCTION @schema@.get_user_sms_metrics(p_user_id uuid, p_days integer DEFAULT 30)
RETURNS TABLE (
  metric_date date,
  scheduled_count integer,
  sent_count integer,
  delivered_count integer,
  failed_count integer,
  llm_cost_usd numeric,
  delivery_rate numeric
)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  PERFORM check_required('p_user_id', p_user_id);
  IF p_days IS NULL OR p_days NOT BETWEEN 1 AND 3660 THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('p_days: must be between 1 and 3660, got %s', coalesce(p_days::text, 'NULL'));
  END IF;
  RETURN QUERY
  SELECT s.metric_date, s.scheduled::integer, s.sent::integer, s.delivered::integer,
         s.failed::integer, s.llm_cost,
         CASE WHEN s.sent > 0 THEN least(100, round(100 * s.delivered / s.sent, 2)) END
  FROM (SELECT m.metric_date,
               coalesce(sum(m.metric_value) FILTER (WHERE m.metric_type = 'scheduled_count'), 0) AS scheduled,
               coalesce(sum(m.metric_value) FILTER (WHERE m.metric_type = 'sent_count'), 0) AS sent,
               coalesce(sum(m.metric_value) FILTER (WHERE m.metric_type = 'delivered_count'), 0) AS delivered,
               coalesce(sum(m.metric_value) FILTER (WHERE m.metric_type = 'failed_count'), 0) AS failed,
               coalesce(sum(m.metric_value) FILTER (WHERE m.metric_type = 'llm_cost_usd'), 0) AS llm_cost
        FROM sms_metrics m
        WHERE m.user_id = p_user_id
          AND m.metric_hour IS NULL
          AND m.metric_date >= current_date - p_days
        GROUP BY m.metric_date) AS s
  ORDER BY s.metric_date DESC;
END;
$$;

COMMENT ON FUNCTION @schema@.get_user_sms_metrics(uuid, integer) IS 'One user''s whole-day SMS counts, LLM cost and delivery rate (NULL when nothing was sent, at most 100) per day over the last p_days days, newest first. Raises 22023 naming p_user_id or p_days when invalid.';

GRANT EXECUTE ON FUNCTION @schema@.get_user_sms_metrics(uuid, integer) TO service_role;
