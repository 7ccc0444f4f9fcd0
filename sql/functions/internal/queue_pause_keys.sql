-- queue_pause_keys: holds back every job of these limit keys until p_until.
--
-- The shared write of pause_queue_limit and of fail_queue_jobs' retry-after. A key
-- without a limit gets a queue_limits row holding only the pause (no rate, no cap);
-- a pause never shortens an existing one (greatest). Keys are upserted in sorted
-- order, so two calls pausing overlapping keys cannot deadlock.
CREATE FUNCTION @schema@.queue_pause_keys(p_keys text[], p_until timestamptz)
RETURNS void
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  IF p_keys IS NULL OR cardinality(p_keys) > 1000
     OR EXISTS (SELECT FROM unnest(p_keys) k WHERE k IS NULL OR k = '' OR length(k) > 200) THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_keys: must be at most 1000 non-empty limit keys of at most 200 characters';
  END IF;
  IF p_until IS NULL OR NOT isfinite(p_until) THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'p_until: must be a finite timestamp';
  END IF;
  INSERT INTO queue_limits AS l (limit_key, paused_until)
  SELECT DISTINCT k, p_until FROM unnest(p_keys) AS k ORDER BY k
  ON CONFLICT (limit_key) DO UPDATE
  SET paused_until = greatest(l.paused_until, excluded.paused_until), updated_at = now();
END;
$$;

COMMENT ON FUNCTION @schema@.queue_pause_keys(text[], timestamptz) IS
  'Internal: pauses the given limit keys until p_until (never shortening a pause), creating pause-only limit rows where needed. 22023 on NULL, empty or over-long keys, more than 1000, or a NULL / infinite time.';

GRANT EXECUTE ON FUNCTION @schema@.queue_pause_keys(text[], timestamptz) TO service_role;
