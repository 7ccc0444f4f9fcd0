-- add_queue_job: enqueues one job, deduplicated by p_dedup_key.
--
-- Dedup: at most one pending/processing job per non-NULL dedup key, enforced by the
-- partial unique index queue_jobs_dedup_key_live_idx. INSERT ... ON CONFLICT DO NOTHING
-- waits for a concurrent inserter of the same key to commit or abort, so concurrent
-- calls all return one id. When the insert yields to a conflict, the live job is read
-- back; if it is not found (it finished in between, or the conflicting transaction
-- aborted), the insert is simply tried again, so the loop ends with either a new row
-- or the live one. Wakes idle workers (queue_wake_workers) when the job is due now.
CREATE FUNCTION @schema@.add_queue_job(p_user_id uuid, p_job_type text, p_metadata jsonb, p_priority integer DEFAULT 10, p_scheduled_for timestamptz DEFAULT now(), p_dedup_key text DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
DECLARE
  v_id uuid;
BEGIN
  -- Job types travel as NOTIFY payloads (at most 8000 bytes) and dedup keys as btree
  -- index entries (at most ~2700 bytes): both are bounded well below that.
  IF p_job_type IS NULL OR p_job_type = '' OR length(p_job_type) > 200 THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_job_type: must be a non-empty string of at most 200 characters';
  END IF;
  IF p_metadata IS NULL OR jsonb_typeof(p_metadata) <> 'object' THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'p_metadata: must be a JSON object';
  END IF;
  IF p_priority IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'p_priority: must not be NULL';
  END IF;
  IF p_scheduled_for IS NULL OR NOT isfinite(p_scheduled_for) THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'p_scheduled_for: must be a finite timestamp';
  END IF;
  IF p_dedup_key = '' OR length(p_dedup_key) > 500 THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_dedup_key: must be NULL or a non-empty string of at most 500 characters';
  END IF;

  LOOP
    INSERT INTO queue_jobs (user_id, job_type, metadata, priority, scheduled_for, dedup_key)
    VALUES (p_user_id, p_job_type, p_metadata, p_priority, p_scheduled_for, p_dedup_key)
    ON CONFLICT (dedup_key) WHERE status IN ('pending', 'processing') AND dedup_key IS NOT NULL
    DO NOTHING
    RETURNING id INTO v_id;
    EXIT WHEN v_id IS NOT NULL;

    SELECT j.id INTO v_id
    FROM queue_jobs j
    WHERE j.dedup_key = p_dedup_key AND j.status IN ('pending', 'processing');
    IF v_id IS NOT NULL THEN
      RETURN v_id;  -- the live job holding the key: already announced when it was added
    END IF;
  END LOOP;

  IF p_scheduled_for <= now() THEN
    PERFORM queue_wake_workers(ARRAY[p_job_type]);
  END IF;
  RETURN v_id;
END;
$$;

COMMENT ON FUNCTION @schema@.add_queue_job(uuid, text, jsonb, integer, timestamptz, text) IS
  'Enqueues a job and returns its id; with a dedup key already held by a pending/processing job, returns that job''s id instead (also under concurrency). 22023 on an empty or over-long (200) job type, an over-long (500) dedup key, non-object metadata, NULL priority or schedule.';

GRANT EXECUTE ON FUNCTION @schema@.add_queue_job(uuid, text, jsonb, integer, timestamptz, text) TO service_role;
