-- queue_limit_status: every limit key's settings and current state, for operators.
--
-- One row per queue_limits row: the limit (max_per_second, burst, max_concurrent),
-- paused_until, tokens now (the bucket refilled to this moment), backlog (pending
-- jobs, due or not), running (processing jobs), and current_rate: starts per second
-- over about the last minute (a sliding window kept by the claim). Reads without
-- locking; backlog and running come from one scan each of the two small partial
-- indexes over keyed jobs, so call it on demand, not in a tight loop.
CREATE FUNCTION @schema@.queue_limit_status()
RETURNS TABLE (limit_key text, max_per_second numeric, burst integer, max_concurrent integer,
               paused_until timestamptz, tokens numeric, backlog bigint, running bigint,
               current_rate numeric)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
  WITH pending AS (
    SELECT j.limit_key, count(*) AS n FROM queue_jobs j
    WHERE j.status = 'pending' AND j.limit_key IS NOT NULL GROUP BY j.limit_key
  ), processing AS (
    SELECT j.limit_key, count(*) AS n FROM queue_jobs j
    WHERE j.status = 'processing' AND j.limit_key IS NOT NULL GROUP BY j.limit_key
  ), windows AS (
    SELECT l.*, least(extract(epoch FROM clock_timestamp() - l.window_start), 120) AS age
    FROM queue_limits l
  )
  SELECT l.limit_key, l.max_per_second, l.burst, l.max_concurrent,
         CASE WHEN l.paused_until > now() THEN l.paused_until END,
         CASE WHEN l.max_per_second IS NOT NULL THEN round(least(greatest(l.burst, 1),
           l.tokens + l.max_per_second * greatest(extract(epoch FROM clock_timestamp() - l.refilled_at), 0))::numeric, 3)
         END,
         coalesce(p.n, 0), coalesce(r.n, 0),
         -- Sliding window: this window's starts plus the part of the previous one
         -- still inside the last minute, over one minute.
         round(CASE WHEN l.age >= 120 THEN 0
                    WHEN l.age >= 60 THEN l.window_starts * (120 - l.age) / 60
                    ELSE l.window_starts + l.prev_window_starts * (60 - l.age) / 60 END / 60.0, 3)
  FROM windows l
  LEFT JOIN pending p ON p.limit_key = l.limit_key
  LEFT JOIN processing r ON r.limit_key = l.limit_key
  ORDER BY l.limit_key;
$$;

COMMENT ON FUNCTION @schema@.queue_limit_status() IS
  'Each limit key: its limit, pause, tokens now, backlog (pending jobs), running (processing jobs) and current rate (starts per second over about the last minute).';

GRANT EXECUTE ON FUNCTION @schema@.queue_limit_status() TO service_role;
-- The console and `notify-sql stats` show it (SELECT on queue_limits: 0012).
GRANT EXECUTE ON FUNCTION @schema@.queue_limit_status() TO notify_sql_monitor;
