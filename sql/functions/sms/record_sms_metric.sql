-- record_sms_metric: adds p_metric_value to one SMS metric (the seed platform's name
-- and arguments).
--
-- One row per (day, hour or NULL for the whole day, user or NULL, type): a single
-- INSERT ... ON CONFLICT DO UPDATE adds the value and merges the metadata, so
-- concurrent recorders never lose an increment. Counters (`sent_count`, ...) and sums
-- (`avg_delivery_time_ms` holds the sum of delivery times; refresh_sms_metrics_daily
-- divides it by delivered_count) are recorded alike.
-- Unlike the platform, bad input is not swallowed with a warning: it raises 22023
-- naming the parameter (NULL date, type or value, hour outside 0..23, over-long type,
-- NaN or infinite value, non-object or over-large metadata) and nothing is written.
CREATE FUNCTION @schema@.record_sms_metric(
  p_metric_date date,
  p_metric_hour integer,
  p_user_id uuid,
  p_metric_type text,
  p_metric_value numeric,
  p_metadata jsonb DEFAULT '{}'
)
RETURNS void
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  IF p_metric_date IS NULL OR NOT isfinite(p_metric_date) THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'p_metric_date: must be a finite date';
  END IF;
  IF p_metric_hour NOT BETWEEN 0 AND 23 THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('p_metric_hour: must be between 0 and 23 (NULL: the whole day), got %s',
                       p_metric_hour);
  END IF;
  PERFORM check_text('p_metric_type', nullif(btrim(p_metric_type), ''), 100);
  IF p_metric_value IS NULL OR p_metric_value = 'NaN'
     OR abs(p_metric_value) >= 1e15 THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_metric_value: must be a number below 1e15 in magnitude';
  END IF;
  PERFORM check_jsonb('p_metadata', p_metadata, 16384);

  INSERT INTO sms_metrics AS m
    (metric_date, metric_hour, user_id, metric_type, metric_value, metadata)
  VALUES (p_metric_date, p_metric_hour, p_user_id, p_metric_type, p_metric_value,
          coalesce(p_metadata, '{}'))
  ON CONFLICT (metric_date, metric_hour, user_id, metric_type) DO UPDATE
  SET metric_value = m.metric_value + excluded.metric_value,
      metadata = m.metadata || excluded.metadata,
      updated_at = now();
END;
$$;

COMMENT ON FUNCTION @schema@.record_sms_metric(date, integer, uuid, text, numeric, jsonb) IS 'Adds p_metric_value to the SMS metric of (date, hour or NULL, user or NULL, type) and merges p_metadata, in one upsert (no lost increments). Raises 22023 naming the parameter on bad input.';

GRANT EXECUTE ON FUNCTION @schema@.record_sms_metric(date, integer, uuid, text, numeric, jsonb) TO service_role;
