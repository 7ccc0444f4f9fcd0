-- check_interval: the one rule for the queue's age and timeout arguments.
--
-- A positive interval of at most 100 years, raised as 22023 naming the parameter. The
-- upper bound is what keeps `now() - p_value` from overflowing in the callers (a huge
-- interval would otherwise surface as an internal datetime error). Raises before the
-- caller has written anything.
CREATE FUNCTION @schema@.check_interval(p_parameter text, p_value interval)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  IF p_value IS NULL OR p_value <= interval '0' OR p_value > interval '100 years' THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('%s: must be a positive interval of at most 100 years',
                       coalesce(p_parameter, 'p_parameter'));
  END IF;
END;
$$;

COMMENT ON FUNCTION @schema@.check_interval(text, interval) IS
  'Raises 22023 naming p_parameter unless p_value is a positive interval of at most 100 years.';

GRANT EXECUTE ON FUNCTION @schema@.check_interval(text, interval) TO service_role;
GRANT EXECUTE ON FUNCTION @schema@.check_interval(text, interval) TO notify_sql_monitor;
