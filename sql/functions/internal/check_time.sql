-- check_time: a required timestamp must be finite (22023 naming the parameter otherwise).
--
-- Part of the validation family (check_*, parameter name first). 'infinity' would sort
-- after every real time and poison "first time kept" rules, so callbacks refuse it.
CREATE FUNCTION @schema@.check_time(p_parameter text, p_value timestamptz)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  IF p_value IS NULL OR NOT isfinite(p_value) THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('%s: must be a finite timestamp', coalesce(p_parameter, 'p_parameter'));
  END IF;
END;
$$;

COMMENT ON FUNCTION @schema@.check_time(text, timestamptz) IS
  'Validation helper: raises 22023 "<p_parameter>: must be a finite timestamp" for NULL or +/-infinity.';

GRANT EXECUTE ON FUNCTION @schema@.check_time(text, timestamptz) TO service_role;
