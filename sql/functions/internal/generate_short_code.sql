-- generate_short_code: a fresh random SMS short-link code.
--
-- 48 random bits (the first six bytes of a version-4 UUID, which are all random)
-- written as 8 URL-safe base64 characters: unguessable enough for links that only
-- count clicks, short enough for an SMS. Uniqueness is not promised here:
-- create_sms_link inserts with ON CONFLICT and retries with a new code.
CREATE FUNCTION @schema@.generate_short_code()
RETURNS text
LANGUAGE sql
VOLATILE PARALLEL SAFE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
  SELECT translate(encode(substr(uuid_send(gen_random_uuid()), 1, 6), 'base64'), '+/', '-_')
$$;

COMMENT ON FUNCTION @schema@.generate_short_code() IS 'A random 8-character URL-safe short code (48 random bits); not checked for uniqueness. Never raises.';

GRANT EXECUTE ON FUNCTION @schema@.generate_short_code() TO service_role;
