-- check_and_increment_sms_daily_limit: counts p_increment SMS against the user's daily
-- limit if, and only if, they fit (the seed platform's name, arguments and result).
--
-- Atomic: the check and the increment are one UPDATE whose WHERE holds the limit
-- test. Concurrent calls for one user queue on the row lock, and under READ COMMITTED
-- each re-evaluates the WHERE against the row as the previous one left it, so however
-- many run at once, the count never passes the limit (tests: 20 concurrent calls).
-- The row is created first (INSERT ... ON CONFLICT DO NOTHING), so a first-ever call
-- races no differently.
-- The day is p_now's UTC date; a new day starts the count again at 0 (reset_at is when
-- it did). The limit is the user's daily_limit in sms_daily_counts when set, else
-- p_default_limit. Not allowed: allowed = false, the count unchanged, reason says why.
-- Bad input (NULL user, increment outside 1..1000, default limit outside 0..100000,
-- infinite p_now) raises 22023 before anything is written.
CREATE FUNCTION @schema@.check_and_increment_sms_daily_limit(
  p_user_id uuid,
  p_increment integer DEFAULT 1,
  p_default_limit integer DEFAULT 10,
  p_now timestamptz DEFAULT now()
)
RETURNS TABLE (
  allowed boolean,
  current_count integer,
  "limit" integer,
  reset_at timestamptz,
  reason text
)
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  v_day date;
BEGIN
  PERFORM check_required('p_user_id', p_user_id);
  IF p_increment IS NULL OR p_increment NOT BETWEEN 1 AND 1000 THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('p_increment: must be between 1 and 1000, got %s',
                       coalesce(p_increment::text, 'NULL'));
  END IF;
  IF p_default_limit IS NULL OR p_default_limit NOT BETWEEN 0 AND 100000 THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('p_default_limit: must be between 0 and 100000, got %s',
                       coalesce(p_default_limit::text, 'NULL'));
  END IF;
  IF p_now IS NULL OR NOT isfinite(p_now) THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'p_now: must be a finite time';
  END IF;
  v_day := (p_now AT TIME ZONE 'UTC')::date;

  INSERT INTO sms_daily_counts AS c (user_id, count_day, sms_count, reset_at)
  VALUES (p_user_id, v_day, 0, p_now)
  ON CONFLICT (user_id) DO NOTHING;

  RETURN QUERY
  UPDATE sms_daily_counts AS c
  SET sms_count = CASE WHEN c.count_day = v_day THEN c.sms_count ELSE 0 END + p_increment,
      reset_at = CASE WHEN c.count_day = v_day THEN c.reset_at ELSE p_now END,
      count_day = v_day,
      updated_at = now()
  WHERE c.user_id = p_user_id
    AND CASE WHEN c.count_day = v_day THEN c.sms_count ELSE 0 END + p_increment
        <= coalesce(c.daily_limit, p_default_limit)
  RETURNING true, c.sms_count, coalesce(c.daily_limit, p_default_limit), c.reset_at,
            NULL::text;
  IF NOT FOUND THEN
    RETURN QUERY
    SELECT false, v.used, v.lim, v.since,
           format('Daily SMS limit reached (%s/%s)', v.used, v.lim)
    FROM (SELECT CASE WHEN c.count_day = v_day THEN c.sms_count ELSE 0 END AS used,
                 coalesce(c.daily_limit, p_default_limit) AS lim,
                 CASE WHEN c.count_day = v_day THEN c.reset_at ELSE p_now END AS since
          FROM sms_daily_counts c WHERE c.user_id = p_user_id) AS v;
  END IF;
END;
$$;

COMMENT ON FUNCTION @schema@.check_and_increment_sms_daily_limit(uuid, integer, integer, timestamptz) IS 'Adds p_increment to the user''s SMS count of p_now''s UTC day only if it stays within the limit (the user''s daily_limit, else p_default_limit), atomically even under concurrency; one row: allowed, current_count, limit, reset_at, reason. Raises 22023 naming the parameter on bad input.';

GRANT EXECUTE ON FUNCTION @schema@.check_and_increment_sms_daily_limit(uuid, integer, integer, timestamptz) TO service_role;
