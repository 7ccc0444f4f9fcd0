-- claim_pending_jobs: hands each due job to at most one worker.
--
-- Why it is safe and bounded:
-- * The ids are picked into an array by one SELECT ... ORDER BY ... LIMIT p_batch_size
--   FOR UPDATE SKIP LOCKED, and the UPDATE touches exactly `id = ANY (that array)`. The
--   array is computed once, so a batch can never exceed p_batch_size (an
--   `id IN (SELECT ... LIMIT n)` subquery may be re-executed by a nested loop and
--   claim more).
-- * SKIP LOCKED: concurrent claimers take disjoint rows without waiting on each other.
--   FOR UPDATE re-checks the WHERE clause on the newest row version before locking it,
--   and the lock is held until commit, so exactly the picked pending rows are claimed.
-- * Each claim writes a fresh processing_token: complete / fail / heartbeat succeed only
--   with it, so a worker whose job was reset as stalled and re-claimed is fenced out.
-- * Only due jobs (scheduled_for <= now()) in order of priority, then scheduled_for.
--
-- Plan pinned: this runs thousands of times a second, so its plans are generic and
-- cached (force_generic_plan: no re-planning per call), and sequential and bitmap scans
-- are off so that the cached plan is always the ordered scan of the partial index
-- queue_jobs_claim_idx plus primary-key lookups, whatever the statistics were when
-- the session planned it (a plan made while the queue was empty must not seq-scan and
-- sort a million pending rows later).
CREATE FUNCTION @schema@.claim_pending_jobs(p_job_types text[], p_batch_size integer DEFAULT 5)
RETURNS TABLE (
  id uuid, queue_job_id text, user_id uuid, job_type text, metadata jsonb,
  status text, priority integer, attempts integer, max_attempts integer,
  scheduled_for timestamptz, created_at timestamptz, updated_at timestamptz,
  started_at timestamptz, completed_at timestamptz, error_message text,
  processing_token uuid
)
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
DECLARE
  v_ids uuid[];
BEGIN
  IF p_job_types IS NULL OR cardinality(p_job_types) = 0 OR array_position(p_job_types, NULL) IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_job_types: must be a non-empty array of job types without NULLs';
  END IF;
  IF p_batch_size IS NULL OR p_batch_size < 1 OR p_batch_size > 1000 THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('p_batch_size: must be between 1 and 1000, got %s', coalesce(p_batch_size::text, 'NULL'));
  END IF;

  v_ids := ARRAY(
    SELECT j.id
    FROM queue_jobs j
    WHERE j.status = 'pending'
      AND j.scheduled_for <= now()
      AND j.job_type = ANY (p_job_types)
    ORDER BY j.priority, j.scheduled_for
    LIMIT p_batch_size
    FOR UPDATE SKIP LOCKED);
  IF cardinality(v_ids) = 0 THEN
    RETURN;
  END IF;

  RETURN QUERY
  WITH claimed AS (
    UPDATE queue_jobs j
    SET status = 'processing',
        processing_token = gen_random_uuid(),
        started_at = now(),
        heartbeat_at = NULL,
        attempts = j.attempts + 1,
        updated_at = now()
    WHERE j.id = ANY (v_ids)
    RETURNING j.*
  )
  SELECT c.id, c.queue_job_id, c.user_id, c.job_type, c.metadata, c.status, c.priority,
         c.attempts, c.max_attempts, c.scheduled_for, c.created_at, c.updated_at,
         c.started_at, c.completed_at, c.error_message, c.processing_token
  FROM claimed c
  ORDER BY c.priority, c.scheduled_for;
END;
$$;

COMMENT ON FUNCTION @schema@.claim_pending_jobs(text[], integer) IS
  'Claims at most p_batch_size due pending jobs of the given types (priority, then scheduled_for), each with a fresh processing_token. 22023 on an empty type list or a batch size outside 1..1000.';

GRANT EXECUTE ON FUNCTION @schema@.claim_pending_jobs(text[], integer) TO service_role;
