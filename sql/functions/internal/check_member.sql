-- check_member: a required text must be one of a fixed list (22023 naming the parameter
-- and the allowed values otherwise).
--
-- Part of the validation family (check_*, parameter name first). The list comes from
-- its one definition (e.g. notification_channels()), so a message can never disagree
-- with the rule; the rejected value is quoted and cut to 100 characters.
CREATE FUNCTION @schema@.check_member(p_parameter text, p_value text, p_allowed text[])
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  IF p_value IS NULL OR p_allowed IS NULL OR p_value <> ALL (p_allowed) THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('%s: must be one of %s, got %L', coalesce(p_parameter, 'p_parameter'),
                       array_to_string(p_allowed, ', '), left(p_value, 100));
  END IF;
END;
$$;

COMMENT ON FUNCTION @schema@.check_member(text, text, text[]) IS
  'Validation helper: raises 22023 "<p_parameter>: must be one of ..., got ..." unless p_value is a non-NULL element of p_allowed.';

GRANT EXECUTE ON FUNCTION @schema@.check_member(text, text, text[]) TO service_role;
