-- get_sms_notification_stats: SMS adoption (all users, now) and SMS delivery (window).
--
-- Adoption, from the sms rows of notification_preferences:
--   total_users_with_phone  rows with a phone number
--   users_phone_verified    ... whose number is verified
--   users_sms_enabled       ... verified, sms enabled and not opted out: users SMS can
--                           actually reach
--   users_opted_out         ... with a phone number and opted out
--   phone_verification_rate = verified / with phone, sms_adoption_rate = enabled /
--   verified, opt_out_rate = opted out / with phone: every numerator is a subset of its
--   denominator, so no rate exceeds 100.
-- Delivery, for sms deliveries created within p_interval of now() (the _24h names are
-- historical): total_sms_sent_24h and sms_delivery_rate_24h are the total_sent and
-- delivery_rate of analytics_delivery_funnel (the sms row of
-- get_notification_channel_performance, by construction); avg_sms_delivery_time_seconds
-- is the mean delivered_at - created_at over deliveries with a delivered_at.
-- Exactly one row; rates rounded to 2 places, NULL on a zero denominator. Read-only; a
-- bad p_interval raises 22023.
CREATE FUNCTION @schema@.get_sms_notification_stats(p_interval text DEFAULT '24 hours')
RETURNS TABLE (
  total_users_with_phone bigint,
  users_phone_verified bigint,
  users_sms_enabled bigint,
  users_opted_out bigint,
  phone_verification_rate numeric,
  sms_adoption_rate numeric,
  opt_out_rate numeric,
  total_sms_sent_24h bigint,
  sms_delivery_rate_24h numeric,
  avg_sms_delivery_time_seconds numeric
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
  WITH phones AS (
    SELECT count(*) AS with_phone,
           count(*) FILTER (WHERE p.phone_verified) AS verified,
           count(*) FILTER (WHERE p.phone_verified AND p.enabled AND NOT p.opted_out) AS enabled,
           count(*) FILTER (WHERE p.opted_out) AS opted_out
    FROM notification_preferences p
    WHERE p.channel = 'sms' AND p.phone_number IS NOT NULL
  )
  SELECT ph.with_phone, ph.verified, ph.enabled, ph.opted_out,
         round(100.0 * ph.verified / nullif(ph.with_phone, 0), 2),
         round(100.0 * ph.enabled / nullif(ph.verified, 0), 2),
         round(100.0 * ph.opted_out / nullif(ph.with_phone, 0), 2),
         f.total_sent, f.delivery_rate, f.avg_time_to_delivered_seconds
  FROM phones ph
  CROSS JOIN analytics_delivery_funnel(v_since, NULL, NULL, false, 'sms') f;
END;
$$;

COMMENT ON FUNCTION @schema@.get_sms_notification_stats(text) IS
  'One row: SMS phone verification, adoption and opt-out counts and rates (now), and sms deliveries created within p_interval of now() (total sent, delivery rate, mean seconds to delivered). Raises 22023 (p_interval) unless p_interval is a positive interval.';

GRANT EXECUTE ON FUNCTION @schema@.get_sms_notification_stats(text) TO service_role;
