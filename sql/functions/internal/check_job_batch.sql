-- check_job_batch: validates the (ids, tokens) arrays of the batch functions.
--
-- Both arrays must be non-NULL, of equal length (at most 1000) and free of NULLs: a NULL
-- token would be an unfenced write, so it is refused like in the single-job functions.
-- An empty batch is allowed (a worker may have nothing to report). Raises 22023 naming
-- the parameter, before the caller writes anything.
CREATE FUNCTION @schema@.check_job_batch(p_job_ids uuid[], p_processing_tokens uuid[])
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  IF p_job_ids IS NULL OR array_position(p_job_ids, NULL) IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'p_job_ids: must be an array without NULLs';
  END IF;
  IF cardinality(p_job_ids) > 1000 THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('p_job_ids: at most 1000 jobs per call, got %s', cardinality(p_job_ids));
  END IF;
  IF p_processing_tokens IS NULL OR array_position(p_processing_tokens, NULL) IS NOT NULL
     OR cardinality(p_processing_tokens) <> cardinality(p_job_ids) THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_processing_tokens: must hold one non-NULL token per job id';
  END IF;
END;
$$;

COMMENT ON FUNCTION @schema@.check_job_batch(uuid[], uuid[]) IS
  'Raises 22023 unless p_job_ids and p_processing_tokens are equal-length (<= 1000) arrays without NULLs.';

GRANT EXECUTE ON FUNCTION @schema@.check_job_batch(uuid[], uuid[]) TO service_role;
