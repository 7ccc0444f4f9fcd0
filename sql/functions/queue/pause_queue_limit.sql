-- pause_queue_limit: a provider said "too many requests": start none of a key's jobs
-- for p_seconds.
--
-- The key's pending jobs stay pending (no attempt is counted) and claim_pending_jobs
-- passes over the key until the pause ends; other keys are unaffected. Jobs already
-- processing are not touched. A pause never shortens a longer one; p_seconds = 0 is
-- refused (to lift a pause early, call set_queue_limit, which clears it). Returns when
-- the pause ends.
CREATE FUNCTION @schema@.pause_queue_limit(p_limit_key text, p_seconds numeric)
RETURNS timestamptz
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
DECLARE
  v_until timestamptz;
BEGIN
  PERFORM check_text('p_limit_key', p_limit_key, 200);
  IF p_limit_key = '' THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'p_limit_key: must not be empty';
  END IF;
  IF p_seconds IS NULL OR p_seconds <= 0 OR p_seconds > 2592000 THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_seconds: must be between 0 (exclusive) and 2592000 (30 days)';
  END IF;
  PERFORM queue_pause_keys(ARRAY[p_limit_key], now() + make_interval(secs => p_seconds::double precision));
  SELECT l.paused_until INTO v_until FROM queue_limits l WHERE l.limit_key = p_limit_key;
  RETURN v_until;
END;
$$;

COMMENT ON FUNCTION @schema@.pause_queue_limit(text, numeric) IS
  'Starts none of the limit key''s jobs for p_seconds (no attempt counted; other keys unaffected); returns when the pause ends. 22023 on a NULL, empty or over-long (200) key or seconds outside (0, 30 days].';

GRANT EXECUTE ON FUNCTION @schema@.pause_queue_limit(text, numeric) TO service_role;
