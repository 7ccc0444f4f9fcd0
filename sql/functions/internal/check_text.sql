-- check_text: the one rule for text arguments: present when required, and bounded.
--
-- Every text argument has a documented upper bound in characters (docs/bounds.md says
-- which and why), so a caller cannot store megabytes in a column meant for a provider
-- id. NULL passes when p_required is false. Parameter name first, like every check_*.
CREATE FUNCTION @schema@.check_text(p_parameter text, p_value text, p_max_length integer,
                                     p_required boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  IF p_value IS NULL THEN
    IF p_required THEN
      RAISE EXCEPTION USING ERRCODE = '22023',
        MESSAGE = format('%s: must not be NULL', coalesce(p_parameter, 'p_parameter'));
    END IF;
  ELSIF length(p_value) > p_max_length THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('%s: at most %s characters, got %s', coalesce(p_parameter, 'p_parameter'),
                       p_max_length, length(p_value));
  END IF;
END;
$$;

COMMENT ON FUNCTION @schema@.check_text(text, text, integer, boolean) IS
  'Raises 22023 naming p_parameter when p_value is NULL (and required) or longer than p_max_length characters.';

GRANT EXECUTE ON FUNCTION @schema@.check_text(text, text, integer, boolean) TO service_role;
GRANT EXECUTE ON FUNCTION @schema@.check_text(text, text, integer, boolean) TO notify_sql_monitor;
