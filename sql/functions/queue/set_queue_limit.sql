-- set_queue_limit: sets, changes or removes a limit key's flow control.
--
-- p_max_per_second and p_burst: a token bucket on the key's job starts (one token per
-- start, refilled at p_max_per_second, holding at most max(p_burst, 1) tokens; p_burst
-- defaults to one second's worth, max(1, ceil(rate))). p_max_concurrent: a cap on the
-- key's jobs in `processing`. Either may be NULL (no such limit); both NULL removes the
-- key's row, and with it any pause. A new bucket starts full; a changed one keeps its
-- tokens (cut to the new burst) and clears any pause. Takes effect at commit for every
-- worker: claim_pending_jobs reads the row under its lock. Returns true when a limit is
-- in place afterwards.
CREATE FUNCTION @schema@.set_queue_limit(p_limit_key text, p_max_per_second numeric DEFAULT NULL, p_max_concurrent integer DEFAULT NULL, p_burst integer DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
DECLARE
  v_burst integer;  -- computed once the rate is known to be in range (no overflow)
BEGIN
  PERFORM check_text('p_limit_key', p_limit_key, 200);
  IF p_limit_key = '' THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'p_limit_key: must not be empty';
  END IF;
  -- The lower bound keeps "when is the next token" (next_limited_start) an interval:
  -- one start per 11.6 days is the slowest rate.
  IF p_max_per_second < 0.000001 OR p_max_per_second > 1000000 THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_max_per_second: must be NULL or between 0.000001 and 1000000';
  END IF;
  IF p_max_concurrent < 1 THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'p_max_concurrent: must be NULL or at least 1';
  END IF;
  IF p_burst < 0 OR p_burst > 1000000 THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'p_burst: must be NULL or between 0 and 1000000';
  END IF;
  IF p_burst IS NOT NULL AND p_max_per_second IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'p_burst: needs p_max_per_second';
  END IF;

  v_burst := CASE WHEN p_max_per_second IS NOT NULL
                  THEN coalesce(p_burst, greatest(1, ceil(p_max_per_second))::integer) END;
  IF p_max_per_second IS NULL AND p_max_concurrent IS NULL THEN
    DELETE FROM queue_limits l WHERE l.limit_key = p_limit_key;
    RETURN false;
  END IF;
  INSERT INTO queue_limits AS l (limit_key, max_per_second, burst, max_concurrent, tokens, refilled_at)
  VALUES (p_limit_key, p_max_per_second, v_burst, p_max_concurrent, coalesce(greatest(v_burst, 1), 0), clock_timestamp())
  ON CONFLICT (limit_key) DO UPDATE
  SET max_per_second = excluded.max_per_second,
      burst = excluded.burst,
      max_concurrent = excluded.max_concurrent,
      -- a bucket that did not exist (no rate, or a pause-only row) starts full
      tokens = CASE WHEN l.max_per_second IS NULL THEN excluded.tokens
                    ELSE least(l.tokens, excluded.tokens) END,
      refilled_at = CASE WHEN l.max_per_second IS NULL THEN clock_timestamp() ELSE l.refilled_at END,
      paused_until = NULL,
      updated_at = now();
  RETURN true;
END;
$$;

COMMENT ON FUNCTION @schema@.set_queue_limit(text, numeric, integer, integer) IS
  'Sets a limit key''s token bucket (p_max_per_second, p_burst: at most max(burst,1) + rate x T starts in any T seconds) and cap on processing jobs (p_max_concurrent); both NULL removes it. 22023 on a NULL, empty or over-long (200) key, a rate outside [0.000001, 1e6], a cap below 1, a burst outside [0, 1e6] or a burst without a rate.';

GRANT EXECUTE ON FUNCTION @schema@.set_queue_limit(text, numeric, integer, integer) TO service_role;
