-- queue_keyed_next_start: the earliest moment any pending keyed job of these types may
-- start, given its key's limits as stored now.
--
-- Per key with pending jobs (found by a skip scan of queue_jobs_keyed_claim_idx, one
-- descent per priority level and key, never reading a backlog): its earliest
-- scheduled_for among the given types (NULL: any type), pushed back to the end of the
-- key's pause and to the moment its bucket holds one token again (refilled_at +
-- (1 - tokens) / max_per_second). A key whose concurrency cap is full gets 'infinity':
-- no clock says when a slot frees (the job leaving processing bumps
-- queue_keyed_generation instead). The minimum over keys; 'infinity' when no key has a
-- job of these types. At or before now: something can start now.
--
-- Conservative in the direction that matters: it reads the limit rows without locking,
-- so tokens a concurrent claim is spending still count (too early an answer, never too
-- late), and a job locked by a concurrent claim still counts as pending. Cost grows
-- with the number of keys (about three index probes per key): queue_keyed_hint calls
-- it rarely, never per claim.
CREATE FUNCTION @schema@.queue_keyed_next_start(p_job_types text[])
RETURNS timestamptz
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
  WITH RECURSIVE heads(prio, key) AS (
    (SELECT j.priority, j.limit_key FROM queue_jobs j
     WHERE j.status = 'pending' AND j.limit_key IS NOT NULL
     ORDER BY j.priority, j.limit_key LIMIT 1)
    UNION ALL
    SELECT n.priority, n.limit_key
    FROM heads h
    CROSS JOIN LATERAL (
      SELECT j.priority, j.limit_key FROM queue_jobs j
      WHERE j.status = 'pending' AND j.limit_key IS NOT NULL
        AND (j.priority, j.limit_key) > (h.prio, h.key)
      ORDER BY j.priority, j.limit_key LIMIT 1) n
  ), due AS (
    SELECT h.key, min((SELECT j.scheduled_for FROM queue_jobs j
                       WHERE j.status = 'pending' AND j.limit_key IS NOT NULL
                         AND j.priority = h.prio AND j.limit_key = h.key
                         AND (p_job_types IS NULL OR j.job_type = ANY (p_job_types))
                       ORDER BY j.priority, j.limit_key, j.scheduled_for LIMIT 1)) AS at
    FROM heads h
    GROUP BY h.key
  )
  SELECT coalesce(min(CASE
           WHEN l.limit_key IS NULL THEN d.at
           WHEN l.max_concurrent IS NOT NULL
                AND queue_key_running(d.key, '{}') >= l.max_concurrent THEN 'infinity'
           ELSE greatest(d.at, l.paused_until,
                  CASE WHEN l.max_per_second IS NOT NULL AND l.tokens < 1
                       THEN l.refilled_at + make_interval(secs => ((1 - l.tokens) / l.max_per_second)::double precision)
                  END)
         END), 'infinity')
  FROM due d
  LEFT JOIN queue_limits l ON l.limit_key = d.key
  WHERE d.at IS NOT NULL;
$$;

COMMENT ON FUNCTION @schema@.queue_keyed_next_start(text[]) IS
  'Internal: the earliest time a pending keyed job of these types (NULL: any) may start under its key''s pause, bucket and cap as stored now; infinity when none can before a slot frees or a job arrives.';

GRANT EXECUTE ON FUNCTION @schema@.queue_keyed_next_start(text[]) TO service_role;
