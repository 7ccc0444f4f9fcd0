-- check_required: the one NULL rule for required arguments, raised as 22023.
--
-- Part of the validation family (check_*): every helper takes the caller's parameter
-- name first, then the value, so a message always starts with the parameter it is
-- about. Polymorphic, so one helper serves uuid, integer, timestamptz and array
-- arguments alike. Raises before the caller has written anything.
CREATE FUNCTION @schema@.check_required(p_parameter text, p_value anyelement)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  IF p_value IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('%s: must not be NULL', coalesce(p_parameter, 'p_parameter'));
  END IF;
END;
$$;

COMMENT ON FUNCTION @schema@.check_required(text, anyelement) IS
  'Raises 22023 naming p_parameter when p_value is NULL.';

GRANT EXECUTE ON FUNCTION @schema@.check_required(text, anyelement) TO service_role;
GRANT EXECUTE ON FUNCTION @schema@.check_required(text, anyelement) TO notify_sql_monitor;
