-- get_sms_daily_metrics: the daily SMS summary for [p_start_date, p_end_date], newest
-- day first (the seed platform's name, arguments and columns).
--
-- Reads sms_metrics_daily as refresh_sms_metrics_daily last wrote it (definitions
-- there). Read-only; a NULL or infinite date, an end before the start or a range over
-- 3660 days raises 22023 naming the parameter.
CREATE FUNCTION @schema@.get_sms_daily_metrics(p_start_date date, p_end_date date)
RETURNS TABLE (
  metric_date date,
  scheduled_count integer,
  sent_count integer,
  delivered_count integer,
  failed_count integer,
  cancelled_count integer,
  avg_delivery_time_ms numeric,
  avg_generation_time_ms numeric,
  llm_success_count integer,
  template_fallback_count integer,
  delivery_success_rate numeric,
  llm_success_rate numeric,
  llm_cost_usd numeric,
  sms_cost_usd numeric,
  opt_out_count integer,
  quiet_hours_skip_count integer,
  daily_limit_hit_count integer,
  delivery_rate_percent numeric,
  llm_success_rate_percent numeric,
  active_users integer
)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  IF p_start_date IS NULL OR NOT isfinite(p_start_date) THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'p_start_date: must be a finite date';
  END IF;
  IF p_end_date IS NULL OR NOT isfinite(p_end_date) OR p_end_date < p_start_date
     OR p_end_date - p_start_date > 3660 THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_end_date: must be a finite date from p_start_date to 3660 days after it';
  END IF;
  RETURN QUERY
  SELECT m.metric_date, m.scheduled_count, m.sent_count, m.delivered_count, m.failed_count,
         m.cancelled_count, m.avg_delivery_time_ms, m.avg_generation_time_ms,
         m.llm_success_count, m.template_fallback_count, m.delivery_success_rate,
         m.llm_success_rate, m.llm_cost_usd, m.sms_cost_usd, m.opt_out_count,
         m.quiet_hours_skip_count, m.daily_limit_hit_count, m.delivery_rate_percent,
         m.llm_success_rate_percent, m.active_users
  FROM sms_metrics_daily m
  WHERE m.metric_date BETWEEN p_start_date AND p_end_date
  ORDER BY m.metric_date DESC;
END;
$$;

COMMENT ON FUNCTION @schema@.get_sms_daily_metrics(date, date) IS 'Daily SMS summary rows (as refresh_sms_metrics_daily last wrote them) from p_start_date to p_end_date, newest first. Raises 22023 naming p_start_date or p_end_date when invalid.';

GRANT EXECUTE ON FUNCTION @schema@.get_sms_daily_metrics(date, date) TO service_role;
