-- add_queue_jobs: enqueues many jobs with one set-based INSERT, deduplicated like add_queue_job.
--
-- p_jobs is a JSON array (at most 1000) of objects with the keys job_type (required),
-- metadata (object, default {}), user_id, priority (default 10), scheduled_for (default
-- now), dedup_key, max_attempts (default 3), limit_key (flow control, set_queue_limit).
-- Returns one id per element, in input order. All elements are validated before
-- anything is written (22023 names the element). metadata.correlationId is added (a
-- new uuid per job: its id) when absent, as in add_queue_job.
--
-- Fast path: a batch without dedup keys is one INSERT of pre-generated ids, nothing
-- to resolve afterwards.
--
-- Dedup: one INSERT ... ON CONFLICT DO NOTHING over the partial unique index (the first
-- element with a key wins within the batch; ON CONFLICT waits for concurrent inserters
-- of the same key). Rows go in sorted by dedup key, so two batches sharing keys take
-- them in the same order and cannot deadlock on each other. The ids were generated beforehand, so an element whose
-- id is absent afterwards yielded to a conflict and resolves to the live job holding
-- its key. An element whose live job vanished in between (finished, or its inserter
-- aborted) is inserted again on the next pass; each pass resolves at least the keys
-- that conflicted with a committed live job, so the loop ends. Wakes idle workers
-- (queue_wake_workers: a NOTIFY per distinct due job type, only when a worker is idle).
CREATE FUNCTION @schema@.add_queue_jobs(p_jobs jsonb)
RETURNS uuid[]
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
DECLARE
  v_jobs queue_job_input[];
  v_ids uuid[];
  v_new_ids uuid[];
  v_bad record;
  v_deduped boolean;
  v_problem boolean;
  v_types text[];
  v_now timestamptz;
  v_hex text;
  v_prefix text;
  v_random text;
  v_counter bigint;
  v_job_prefix text;
  v_allowed_keys constant text[] := ARRAY['user_id', 'job_type', 'metadata', 'priority',
                                          'scheduled_for', 'dedup_key', 'max_attempts', 'limit_key'];
BEGIN
  IF p_jobs IS NULL OR jsonb_typeof(p_jobs) <> 'array' THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'p_jobs: must be a JSON array of job objects';
  END IF;
  PERFORM check_batch_size('p_jobs', jsonb_array_length(p_jobs));
  -- Flow control: new keyed jobs void the claims' "nothing keyed can start" hints (in
  -- this transaction, so undone with it if an element is refused below).
  IF p_jobs @? '$[*].limit_key ? (@ != null)' THEN
    PERFORM queue_keyed_bump();
  END IF;

  -- Ids in the column default's time-ordered layout (48-bit milliseconds, version 7,
  -- the rest random), built per call, not per row: the call's time, then the random
  -- bits of one gen_random_uuid per call, its last 48 bits used as a counter that
  -- starts at a random value and counts the rows (UUIDv7's "counter" method; a random
  -- number per row cost a tenth of a batch). queue_job_id keeps its default's form,
  -- 'job_<UTC time to the microsecond>_<12 hex digits>', with the call's time and the
  -- id's counter digits. Rows of one call are unique by the counter; calls differ in
  -- their time or, beyond that, in 74 random bits.
  v_now := clock_timestamp();
  v_hex := lpad(to_hex((date_part('epoch', v_now) * 1000)::bigint), 12, '0');
  v_prefix := substr(v_hex, 1, 8) || '-' || substr(v_hex, 9, 4) || '-7';
  v_job_prefix := 'job_' || to_char(v_now AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISSUS') || '_';
  v_random := gen_random_uuid()::text;
  -- 48 random bits, kept 1000 rows below the top so that the counter never wraps.
  v_counter := ('x' || right(v_random, 12))::bit(48)::bigint % (281474976710656 - 1000);

  -- Fast path, no dedup key in the batch: one INSERT straight from the JSON, nothing to
  -- resolve, checked as a whole: one scan for non-objects and unknown keys, two
  -- jsonpath scans (job_type and metadata types), the table's CHECK and NOT NULL
  -- constraints, and the RETURNING
  -- rows (job type length, finite time). Any problem undoes the insert (its
  -- subtransaction) and sends the batch to the checked path below, which names the
  -- element and raises.
  IF NOT p_jobs @? '$[*].dedup_key ? (@ != null)'
     AND NOT EXISTS (SELECT FROM jsonb_array_elements(p_jobs) e
                     WHERE CASE WHEN jsonb_typeof(e) = 'object' THEN (e - v_allowed_keys) <> '{}'::jsonb
                                ELSE true END)
     AND NOT p_jobs @? '$[*].job_type ? (@.type() != "string")'
     AND NOT p_jobs @? '$[*].metadata ? (@.type() != "object")' THEN
    v_ids := ARRAY(SELECT (v_prefix || substr(v_random, 16, 9) || lpad(to_hex(v_counter + o), 12, '0'))::uuid
                   FROM generate_series(1, jsonb_array_length(p_jobs)) AS o);
    BEGIN
      WITH inserted AS (
        INSERT INTO queue_jobs (id, queue_job_id, user_id, job_type, metadata, priority, scheduled_for, max_attempts, limit_key)
        SELECT v_ids[j.ord], v_job_prefix || right(v_ids[j.ord]::text, 12), j.user_id, j.job_type,
               CASE WHEN j.metadata ? 'correlationId' THEN j.metadata
                    ELSE coalesce(j.metadata, '{}') || jsonb_build_object('correlationId', v_ids[j.ord]) END,
               coalesce(j.priority, 10), coalesce(j.scheduled_for, now()), coalesce(j.max_attempts, 3), j.limit_key
        FROM jsonb_populate_recordset(NULL::queue_job_input, p_jobs)
             WITH ORDINALITY AS j(user_id, job_type, metadata, priority, scheduled_for, dedup_key, max_attempts, limit_key, ord)
        RETURNING job_type, scheduled_for)
      SELECT bool_or(NOT isfinite(i.scheduled_for) OR length(i.job_type) > 200),
             coalesce(array_agg(DISTINCT i.job_type) FILTER (WHERE i.scheduled_for <= now()), '{}')
      INTO v_problem, v_types
      FROM inserted i;
      IF v_problem THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'p_jobs: an element is out of bounds';
      END IF;
      PERFORM queue_wake_workers(v_types);
      RETURN v_ids;
    EXCEPTION WHEN data_exception OR check_violation OR not_null_violation THEN
      NULL;  -- undone; the checked path below finds the element and raises
    END;
  END IF;


  -- The first element with a problem, if any (CASE tests in order, so the key checks
  -- only ever see objects).
  SELECT checked.ord, checked.problem INTO v_bad
  FROM (
    SELECT e.ord, CASE
             WHEN jsonb_typeof(e.job) <> 'object' THEN 'is not an object'
             WHEN (e.job - v_allowed_keys) <> '{}'::jsonb
               THEN 'has unknown keys (allowed: ' || array_to_string(v_allowed_keys, ', ') || ')'
             WHEN jsonb_typeof(e.job -> 'job_type') IS DISTINCT FROM 'string' OR e.job ->> 'job_type' = ''
               THEN 'job_type must be a non-empty string'
             WHEN length(e.job ->> 'job_type') > 200 THEN 'job_type must be at most 200 characters'
             WHEN jsonb_typeof(coalesce(e.job -> 'metadata', '{}')) <> 'object' THEN 'metadata must be an object'
             WHEN jsonb_typeof(e.job -> 'dedup_key') = 'string' AND e.job ->> 'dedup_key' = ''
               THEN 'dedup_key must be NULL or non-empty'
             WHEN length(e.job ->> 'dedup_key') > 500 THEN 'dedup_key must be at most 500 characters'
             WHEN jsonb_typeof(e.job -> 'limit_key') = 'string' AND e.job ->> 'limit_key' = ''
               THEN 'limit_key must be NULL or non-empty'
             WHEN length(e.job ->> 'limit_key') > 200 THEN 'limit_key must be at most 200 characters'
           END AS problem
    FROM jsonb_array_elements(p_jobs) WITH ORDINALITY AS e(job, ord)
  ) checked
  WHERE checked.problem IS NOT NULL
  ORDER BY checked.ord
  LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('p_jobs: element %s %s', v_bad.ord, v_bad.problem);
  END IF;

  BEGIN
    v_jobs := ARRAY(
      SELECT ROW(j.user_id, j.job_type,
                 CASE WHEN j.metadata ? 'correlationId' THEN j.metadata
                      ELSE coalesce(j.metadata, '{}') END,
                 coalesce(j.priority, 10), coalesce(j.scheduled_for, now()), j.dedup_key,
                 coalesce(j.max_attempts, 3), j.limit_key)::queue_job_input
      FROM jsonb_populate_recordset(NULL::queue_job_input, p_jobs) WITH ORDINALITY AS j
      ORDER BY j.ordinality);
  EXCEPTION WHEN data_exception THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'p_jobs: ' || SQLERRM;
  END;
  SELECT ord INTO v_bad FROM unnest(v_jobs) WITH ORDINALITY AS j(user_id, job_type, metadata, priority, scheduled_for, dedup_key, max_attempts, limit_key, ord)
  WHERE j.max_attempts < 1 OR NOT isfinite(j.scheduled_for) LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('p_jobs: element %s needs max_attempts >= 1 and a finite scheduled_for', v_bad.ord);
  END IF;
  v_deduped := EXISTS (SELECT FROM unnest(v_jobs) AS j WHERE j.dedup_key IS NOT NULL);

  v_ids := array_fill(NULL::uuid, ARRAY[cardinality(v_jobs)]);  -- also after the fast path
  LOOP
    -- Candidate ids for the unresolved elements, so the rows inserted can be told
    -- from those that yielded (fresh random bits per pass: a candidate that yielded
    -- was never stored, but its queue_job_id digits must not repeat another's).
    v_random := gen_random_uuid()::text;
    v_counter := ('x' || right(v_random, 12))::bit(48)::bigint % (281474976710656 - 1000);
    v_new_ids := ARRAY(
      SELECT CASE WHEN v_ids[o] IS NULL THEN (v_prefix || substr(v_random, 16, 9) || lpad(to_hex(v_counter + o), 12, '0'))::uuid END
      FROM generate_series(1, cardinality(v_jobs)) AS o);

    INSERT INTO queue_jobs (id, queue_job_id, user_id, job_type, metadata, priority, scheduled_for, dedup_key, max_attempts, limit_key)
    SELECT v_new_ids[j.ord], v_job_prefix || right(v_new_ids[j.ord]::text, 12), j.user_id, j.job_type,
           CASE WHEN j.metadata ? 'correlationId' THEN j.metadata
                ELSE j.metadata || jsonb_build_object('correlationId', v_new_ids[j.ord]) END,
           j.priority, j.scheduled_for, j.dedup_key, j.max_attempts, j.limit_key
    FROM unnest(v_jobs) WITH ORDINALITY AS j(user_id, job_type, metadata, priority, scheduled_for, dedup_key, max_attempts, limit_key, ord)
    WHERE v_ids[j.ord] IS NULL
    ORDER BY j.dedup_key, j.ord
    ON CONFLICT (dedup_key) WHERE status IN ('pending', 'processing') AND dedup_key IS NOT NULL
    DO NOTHING;
    IF NOT v_deduped THEN
      v_ids := v_new_ids;  -- no key, no conflict: every row went in
      EXIT;
    END IF;

    -- An element yielded to a conflict when its candidate id is absent: it resolves to
    -- the live job holding its key (visible now: ON CONFLICT waited for its inserter).
    SELECT array_agg(coalesce(v_ids[o.ord], mine.id, live.id) ORDER BY o.ord)
    INTO v_ids
    FROM unnest(v_jobs) WITH ORDINALITY AS o(user_id, job_type, metadata, priority, scheduled_for, dedup_key, max_attempts, limit_key, ord)
    LEFT JOIN queue_jobs mine ON mine.id = v_new_ids[o.ord]
    LEFT JOIN queue_jobs live
      ON mine.id IS NULL AND v_ids[o.ord] IS NULL
     AND live.dedup_key = o.dedup_key AND live.status IN ('pending', 'processing');
    EXIT WHEN array_position(v_ids, NULL) IS NULL;
  END LOOP;

  PERFORM queue_wake_workers(ARRAY(SELECT DISTINCT j.job_type FROM unnest(v_jobs) AS j WHERE j.scheduled_for <= now()));
  RETURN v_ids;
END;
$$;

COMMENT ON FUNCTION @schema@.add_queue_jobs(jsonb) IS
  'Enqueues up to 1000 jobs given as a JSON array of objects; returns their ids in input order, a deduplicated element getting the id of the live job holding its key. 22023 naming the element on bad input; nothing is written then.';

GRANT EXECUTE ON FUNCTION @schema@.add_queue_jobs(jsonb) TO service_role;
