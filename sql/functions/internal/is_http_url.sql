-- is_http_url: whether a text is an absolute http or https URL with a host and no
-- whitespace; the check create_sms_link and record_email_event apply to p_url
-- (the same rule as the CHECK on sms_links.url).
CREATE FUNCTION @schema@.is_http_url(p_url text)
RETURNS boolean
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
  SELECT coalesce(p_url ~* '^https?://[^\s/?#]+[^\s]*$', false)
$$;

COMMENT ON FUNCTION @schema@.is_http_url(text) IS 'True for an absolute http(s) URL with a host and no whitespace; false otherwise (NULL included). Never raises.';

GRANT EXECUTE ON FUNCTION @schema@.is_http_url(text) TO service_role;
