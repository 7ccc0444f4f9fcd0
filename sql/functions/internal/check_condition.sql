-- check_condition: the general member of the validation family, for rules the others
-- do not cover (a range, a relation between arguments, a row that must exist).
--
-- Parameter name first, like every check_*; raises 22023 "<p_parameter>: <p_requirement>"
-- unless p_ok is true (NULL counts as false, so a NULL argument fails its rule rather
-- than slipping past it). The caller states the rule once, as the condition, and the
-- requirement text says it to the user.
CREATE FUNCTION @schema@.check_condition(p_parameter text, p_ok boolean, p_requirement text)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  IF p_ok IS NOT TRUE THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('%s: %s', coalesce(p_parameter, 'p_parameter'),
                       coalesce(p_requirement, 'is invalid'));
  END IF;
END;
$$;

COMMENT ON FUNCTION @schema@.check_condition(text, boolean, text) IS
  'Validation helper: raises 22023 "<p_parameter>: <p_requirement>" unless p_ok is true (NULL fails).';

GRANT EXECUTE ON FUNCTION @schema@.check_condition(text, boolean, text) TO service_role;
GRANT EXECUTE ON FUNCTION @schema@.check_condition(text, boolean, text) TO notify_sql_monitor;
