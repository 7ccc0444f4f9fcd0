-- check_window: the one parser for the analytics window arguments (p_interval).
--
-- Guarantees: returns an interval i such that now() - i is a representable instant
-- strictly before now(); anything else (NULL, text that is not an interval, zero,
-- negative, or so large that the window start overflows) raises 22023 with a message
-- starting with the caller's parameter name. The text is cast, never spliced into a
-- statement, and the cast's own errors (class 22: syntax, field overflow) are caught
-- and re-raised as 22023 so callers see one error code for every bad window.
CREATE FUNCTION @schema@.check_window(p_parameter text, p_value text)
RETURNS interval
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
DECLARE
  v_interval interval;
  v_start timestamptz;
BEGIN
  p_parameter := coalesce(p_parameter, 'p_parameter');  -- messages always name something
  IF p_value IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('%s: is required (a positive interval such as ''7 days'')', p_parameter);
  END IF;
  -- Interval text is short ('7 days', '2 weeks 3 hours'); docs/bounds.md.
  PERFORM check_text(p_parameter, p_value, 100);
  BEGIN
    v_interval := p_value::interval;
  EXCEPTION WHEN data_exception THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('%s: not an interval: %L', p_parameter, left(p_value, 100));
  END;
  BEGIN
    v_start := now() - v_interval;
  EXCEPTION WHEN data_exception THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('%s: too large: %L', p_parameter, left(p_value, 100));
  END;
  -- Compared as instants, not as interval values: interval comparison assumes 30-day
  -- months, so '1 month -30 days' would pass it yet open an empty or future window.
  IF v_start >= now() THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('%s: must be positive, got %L', p_parameter, left(p_value, 100));
  END IF;
  RETURN v_interval;
END;
$$;

COMMENT ON FUNCTION @schema@.check_window(text, text) IS
  'Parses an analytics window: a positive interval whose start now() - i is representable; otherwise (or when longer than 100 characters) raises 22023 naming p_parameter.';

GRANT EXECUTE ON FUNCTION @schema@.check_window(text, text) TO service_role;
GRANT EXECUTE ON FUNCTION @schema@.check_window(text, text) TO notify_sql_monitor;
