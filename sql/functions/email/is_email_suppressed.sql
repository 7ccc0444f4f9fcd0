-- is_email_suppressed: whether an address must not be emailed in a scope (the seed
-- platform's name and arguments): true when its normalised form (lower-cased, trimmed)
-- is suppressed for p_scope or for `all`. Read-only, one index lookup. An empty or
-- over-long email or a scope outside the vocabulary raises 22023 naming the parameter
-- (the platform answered false).
CREATE FUNCTION @schema@.is_email_suppressed(p_email text, p_scope text)
RETURNS boolean
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  PERFORM check_text('p_email', nullif(btrim(p_email), ''), 320);
  PERFORM check_choice('p_scope', p_scope, ARRAY['lifecycle', 'marketing', 'daily_brief', 'all']);
  RETURN EXISTS (SELECT FROM email_suppressions s
                 WHERE s.email = lower(btrim(p_email)) AND s.scope IN (p_scope, 'all'));
END;
$$;

COMMENT ON FUNCTION @schema@.is_email_suppressed(text, text) IS 'True when the normalised address is suppressed for p_scope or for all. Raises 22023 naming p_email or p_scope when invalid.';

GRANT EXECUTE ON FUNCTION @schema@.is_email_suppressed(text, text) TO service_role;
