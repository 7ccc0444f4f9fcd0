-- prune_queue_jobs: deletes finished jobs older than a given age, one bounded batch.
--
-- Deletes at most p_batch_size completed / failed / cancelled jobs finished more than
-- p_older_than ago and returns how many. One call is one short statement (the victims
-- are fixed in a MATERIALIZED CTE with SKIP LOCKED, so it never waits on or blocks
-- other work for long); call it repeatedly, each in its own transaction, until it
-- returns less than p_batch_size. Pruning keeps the heap small and lets vacuum reuse
-- its space, which keeps claim latency flat.
CREATE FUNCTION @schema@.prune_queue_jobs(p_older_than interval DEFAULT '7 days', p_batch_size integer DEFAULT 5000)
RETURNS integer
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
DECLARE
  v_deleted integer;
BEGIN
  PERFORM check_interval('p_older_than', p_older_than);
  PERFORM check_batch_size('p_batch_size', p_batch_size, 100000);

  WITH victims AS MATERIALIZED (
    SELECT j.id
    FROM queue_jobs j
    WHERE j.status IN ('completed', 'failed', 'cancelled')
      AND j.completed_at < now() - p_older_than
    LIMIT p_batch_size
    FOR UPDATE SKIP LOCKED
  ), deleted AS (
    DELETE FROM queue_jobs j
    USING victims v
    WHERE j.id = v.id
    RETURNING 1
  )
  SELECT count(*) INTO v_deleted FROM deleted;
  RETURN v_deleted;
END;
$$;

COMMENT ON FUNCTION @schema@.prune_queue_jobs(interval, integer) IS
  'Deletes at most p_batch_size jobs finished more than p_older_than ago; returns how many (call again until it returns less). 22023 on an age outside (0, 100 years] or a batch size outside 1..100000.';

GRANT EXECUTE ON FUNCTION @schema@.prune_queue_jobs(interval, integer) TO service_role;
