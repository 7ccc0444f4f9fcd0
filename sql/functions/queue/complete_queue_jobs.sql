-- complete_queue_jobs: completes many claimed jobs in one statement.
--
-- Element i of each array describes one job; each is fenced by its own token exactly
-- like complete_queue_job, so a stale pair changes nothing and is absent from the
-- result. One round trip and one commit for a whole claimed batch is what makes
-- batch draining cheaper than job-at-a-time. Returns the ids completed.
--
-- Plan pinned: hot path, so plans are generic and cached (force_generic_plan), with
-- sequential scans, hash and merge joins off: the cached plan is always a nested loop of
-- primary-key lookups over the input arrays, whatever the statistics were when the
-- session planned it.
CREATE FUNCTION @schema@.complete_queue_jobs(p_job_ids uuid[], p_processing_tokens uuid[], p_results jsonb[] DEFAULT NULL)
RETURNS uuid[]
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
  v_completed uuid[];
BEGIN
  PERFORM check_job_batch(p_job_ids, p_processing_tokens);
  PERFORM check_condition('p_results',
    p_results IS NULL OR cardinality(p_results) = cardinality(p_job_ids),
    'must be NULL or hold one element per job id');
  PERFORM check_condition('p_results',  -- docs/bounds.md: p_result's bound, per element
    NOT EXISTS (SELECT FROM unnest(p_results) AS r (v) WHERE pg_column_size(r.v) > 1048576),
    'every element at most 1048576 bytes');

  WITH completed AS (
    UPDATE queue_jobs j
    SET status = 'completed', completed_at = now(), result = c.result, updated_at = now()
    FROM unnest(p_job_ids, p_processing_tokens, coalesce(p_results, array_fill(NULL::jsonb, ARRAY[cardinality(p_job_ids)])))
         AS c(id, token, result)
    WHERE j.id = c.id AND j.status = 'processing' AND j.processing_token = c.token
    RETURNING j.id
  )
  SELECT coalesce(array_agg(id), '{}') INTO v_completed FROM completed;
  RETURN v_completed;
END;
$$;

COMMENT ON FUNCTION @schema@.complete_queue_jobs(uuid[], uuid[], jsonb[]) IS
  'Completes each (id, token) pair whose token is still current; returns the ids completed. 22023 on NULLs, mismatched lengths, more than 1000 jobs or a result over 1 MiB.';

GRANT EXECUTE ON FUNCTION @schema@.complete_queue_jobs(uuid[], uuid[], jsonb[]) TO service_role;
