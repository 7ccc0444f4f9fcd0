-- check_choice: raises 22023 naming the parameter unless p_value is one of p_choices.
--
-- One place for "a word from a fixed vocabulary" arguments (scopes, reasons, sources,
-- priorities), so each message has the same form and lists what is allowed. The value
-- is quoted and cut to 40 characters in the message: never spliced into a statement.
CREATE FUNCTION @schema@.check_choice(p_parameter text, p_value text, p_choices text[])
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  IF p_value IS NULL OR NOT p_value = ANY (p_choices) THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('%s: must be one of %s, got %s', coalesce(p_parameter, 'p_parameter'),
                       array_to_string(p_choices, ', '),
                       coalesce(quote_literal(left(p_value, 40)), 'NULL'));
  END IF;
END;
$$;

COMMENT ON FUNCTION @schema@.check_choice(text, text, text[]) IS
  'Raises 22023 naming p_parameter unless p_value is one of p_choices (NULL is refused).';

GRANT EXECUTE ON FUNCTION @schema@.check_choice(text, text, text[]) TO service_role;
