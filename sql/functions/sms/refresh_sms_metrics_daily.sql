-- refresh_sms_metrics_daily: rewrites the daily SMS summary (sms_metrics_daily) from the
-- whole-day rows of sms_metrics (the seed platform's name; schedule it, e.g. hourly).
--
-- The one definition of the daily figures: counts are sums of their metric type;
-- avg_delivery_time_ms = sum of avg_delivery_time_ms / delivered_count and
-- avg_generation_time_ms = sum of avg_generation_time_ms / (llm_success_count +
-- template_fallback_count); delivery rates = 100 * delivered / sent and LLM success
-- rates = 100 * llm_success / (llm_success + template_fallback), rounded to 2 places,
-- NULL when the denominator is 0 (the platform wrote 0) and never above 100;
-- active_users = distinct users with a whole-day metric. Days whose metrics were
-- deleted disappear. One statement per step inside the caller's transaction, so
-- readers see the old summary or the new one. Takes no argument; raises nothing of its
-- own (unlike the platform, errors are not swallowed).
CREATE FUNCTION @schema@.refresh_sms_metrics_daily()
RETURNS void
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  WITH sums AS (
    SELECT m.metric_date,
           sum(m.metric_value) FILTER (WHERE m.metric_type = 'scheduled_count') AS scheduled,
           sum(m.metric_value) FILTER (WHERE m.metric_type = 'sent_count') AS sent,
           sum(m.metric_value) FILTER (WHERE m.metric_type = 'delivered_count') AS delivered,
           sum(m.metric_value) FILTER (WHERE m.metric_type = 'failed_count') AS failed,
           sum(m.metric_value) FILTER (WHERE m.metric_type = 'cancelled_count') AS cancelled,
           sum(m.metric_value) FILTER (WHERE m.metric_type = 'avg_delivery_time_ms') AS delivery_ms,
           sum(m.metric_value) FILTER (WHERE m.metric_type = 'avg_generation_time_ms') AS generation_ms,
           sum(m.metric_value) FILTER (WHERE m.metric_type = 'llm_success_count') AS llm_ok,
           sum(m.metric_value) FILTER (WHERE m.metric_type = 'template_fallback_count') AS fallback,
           sum(m.metric_value) FILTER (WHERE m.metric_type = 'llm_cost_usd') AS llm_cost,
           sum(m.metric_value) FILTER (WHERE m.metric_type = 'sms_cost_usd') AS sms_cost,
           sum(m.metric_value) FILTER (WHERE m.metric_type = 'opt_out_count') AS opt_outs,
           sum(m.metric_value) FILTER (WHERE m.metric_type = 'quiet_hours_skip_count') AS quiet,
           sum(m.metric_value) FILTER (WHERE m.metric_type = 'daily_limit_hit_count') AS limit_hits,
           count(DISTINCT m.user_id) AS users
    FROM sms_metrics m
    WHERE m.metric_hour IS NULL
    GROUP BY m.metric_date
  ),
  figures AS (
    SELECT s.*,
           -- least() skips NULLs, so the zero-denominator case is a CASE of its own.
           CASE WHEN s.sent > 0
                THEN least(100, round(100 * coalesce(s.delivered, 0) / s.sent, 2))
           END AS delivery_rate,
           CASE WHEN coalesce(s.llm_ok, 0) + coalesce(s.fallback, 0) > 0
                THEN round(100 * coalesce(s.llm_ok, 0)
                           / (coalesce(s.llm_ok, 0) + coalesce(s.fallback, 0)), 2)
           END AS llm_rate
    FROM sums s
  ),
  written AS (
    INSERT INTO sms_metrics_daily AS d
      (metric_date, scheduled_count, sent_count, delivered_count, failed_count,
       cancelled_count, avg_delivery_time_ms, avg_generation_time_ms, llm_success_count,
       template_fallback_count, delivery_success_rate, llm_success_rate, llm_cost_usd,
       sms_cost_usd, opt_out_count, quiet_hours_skip_count, daily_limit_hit_count,
       delivery_rate_percent, llm_success_rate_percent, active_users, refreshed_at)
    SELECT f.metric_date, coalesce(f.scheduled, 0), coalesce(f.sent, 0),
           coalesce(f.delivered, 0), coalesce(f.failed, 0), coalesce(f.cancelled, 0),
           round(f.delivery_ms / nullif(f.delivered, 0), 2),
           round(f.generation_ms / nullif(coalesce(f.llm_ok, 0) + coalesce(f.fallback, 0), 0), 2),
           coalesce(f.llm_ok, 0), coalesce(f.fallback, 0), f.delivery_rate, f.llm_rate,
           coalesce(f.llm_cost, 0), coalesce(f.sms_cost, 0), coalesce(f.opt_outs, 0),
           coalesce(f.quiet, 0), coalesce(f.limit_hits, 0), f.delivery_rate, f.llm_rate,
           f.users, now()
    FROM figures f
    ON CONFLICT (metric_date) DO UPDATE
    SET (scheduled_count, sent_count, delivered_count, failed_count, cancelled_count,
         avg_delivery_time_ms, avg_generation_time_ms, llm_success_count,
         template_fallback_count, delivery_success_rate, llm_success_rate, llm_cost_usd,
         sms_cost_usd, opt_out_count, quiet_hours_skip_count, daily_limit_hit_count,
         delivery_rate_percent, llm_success_rate_percent, active_users, refreshed_at)
      = (excluded.scheduled_count, excluded.sent_count, excluded.delivered_count,
         excluded.failed_count, excluded.cancelled_count, excluded.avg_delivery_time_ms,
         excluded.avg_generation_time_ms, excluded.llm_success_count,
         excluded.template_fallback_count, excluded.delivery_success_rate,
         excluded.llm_success_rate, excluded.llm_cost_usd, excluded.sms_cost_usd,
         excluded.opt_out_count, excluded.quiet_hours_skip_count,
         excluded.daily_limit_hit_count, excluded.delivery_rate_percent,
         excluded.llm_success_rate_percent, excluded.active_users, excluded.refreshed_at)
    RETURNING d.metric_date
  )
  DELETE FROM sms_metrics_daily d
  WHERE d.metric_date NOT IN (SELECT w.metric_date FROM written w);
END;
$$;

COMMENT ON FUNCTION @schema@.refresh_sms_metrics_daily() IS 'Rewrites sms_metrics_daily (one row per day: counts, averages, rates NULL on a zero denominator and at most 100, active users) from the whole-day rows of sms_metrics.';

GRANT EXECUTE ON FUNCTION @schema@.refresh_sms_metrics_daily() TO service_role;
