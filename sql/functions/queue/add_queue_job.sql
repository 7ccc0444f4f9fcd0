-- add_queue_job: enqueues one job, deduplicated by p_dedup_key, optionally under a limit key.
--
-- Dedup: at most one pending/processing job per non-NULL dedup key, enforced by the
-- partial unique index queue_jobs_dedup_key_live_idx. INSERT ... ON CONFLICT DO NOTHING
-- waits for a concurrent inserter of the same key to commit or abort, so concurrent
-- calls all return one id. When the insert yields to a conflict, the live job is read
-- back; if it is not found (it finished in between, or the conflicting transaction
-- aborted), the insert is simply tried again, so the loop ends with either a new row
-- or the live one.
--
-- metadata.correlationId: kept when the caller gives one, else a new uuid (the job's
-- own id), so every job can be traced (the seed platform's workers read it).
--
-- p_limit_key (last, so positional callers of the seed's six arguments are unaffected)
-- puts the job under that key's flow control (set_queue_limit); it costs the insert
-- one more column and one nextval (queue_keyed_bump, inline).
--
-- Wake-up: when the job is due now, a NOTIFY only if a worker is idle (the logic of
-- queue_wake_workers, inline): a busy system enqueues without the cluster-wide NOTIFY
-- lock.
CREATE FUNCTION @schema@.add_queue_job(p_user_id uuid, p_job_type text, p_metadata jsonb, p_priority integer DEFAULT 10, p_scheduled_for timestamptz DEFAULT now(), p_dedup_key text DEFAULT NULL, p_limit_key text DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
DECLARE
  v_now constant timestamptz := clock_timestamp();
  v_id uuid;
  v_text text;
  v_job_id text;
  v_live uuid;
  v_hex text;
  v_metadata jsonb;
  v_mode text;
  v_void text;
  v_problem text;
  v_idle boolean;
BEGIN
  -- Job types travel as NOTIFY payloads (at most 8000 bytes) and dedup / limit keys as
  -- btree index entries (at most ~2700 bytes): all are bounded well below that. The
  -- checks are one CASE on purpose: this is the hottest write path, and every PL/pgSQL
  -- statement (let alone a PERFORM of a check_* helper) costs a little.
  v_problem := CASE
    WHEN p_job_type IS NULL OR p_job_type = '' OR length(p_job_type) > 200
      THEN 'p_job_type: must be a non-empty string of at most 200 characters'
    WHEN p_metadata IS NULL OR jsonb_typeof(p_metadata) <> 'object' THEN 'p_metadata: must be a JSON object'
    WHEN p_priority IS NULL THEN 'p_priority: must not be NULL'
    WHEN p_scheduled_for IS NULL OR NOT isfinite(p_scheduled_for)
      THEN 'p_scheduled_for: must be a finite timestamp'
    WHEN p_dedup_key = '' OR length(p_dedup_key) > 500
      THEN 'p_dedup_key: must be NULL or a non-empty string of at most 500 characters'
    WHEN p_limit_key = '' OR length(p_limit_key) > 200
      THEN 'p_limit_key: must be NULL or a non-empty string of at most 200 characters'
  END;
  IF v_problem IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = v_problem;
  END IF;

  -- The id in the column default's time-ordered layout (48-bit milliseconds, version
  -- 7, random rest), built more cheaply than the default's text operations; a job
  -- without a correlationId gets its own id as one (a new uuid). queue_job_id in its
  -- default's form ('job_<UTC time to the microsecond>_<12 random hex digits>'), its
  -- random digits the id's last 12: one gen_random_uuid per job instead of two.
  v_hex := lpad(to_hex((date_part('epoch', v_now) * 1000)::bigint), 12, '0');
  v_text := overlay(gen_random_uuid()::text PLACING substr(v_hex, 1, 8) || '-' || substr(v_hex, 9, 4) || '-7'
                    FROM 1 FOR 15);
  v_id := v_text::uuid;
  v_job_id := 'job_' || to_char(v_now AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISSUS') || '_' || right(v_text, 12);
  v_metadata := CASE WHEN p_metadata ? 'correlationId' THEN p_metadata
                     ELSE p_metadata || jsonb_build_object('correlationId', v_id) END;

  IF p_dedup_key IS NULL THEN
    -- No key, no conflict possible: a plain INSERT (ON CONFLICT's speculative
    -- insertion costs measurably more).
    INSERT INTO queue_jobs (id, queue_job_id, user_id, job_type, metadata, priority, scheduled_for, limit_key)
    VALUES (v_id, v_job_id, p_user_id, p_job_type, v_metadata, p_priority, p_scheduled_for, p_limit_key);
  ELSE
    LOOP
      INSERT INTO queue_jobs (id, queue_job_id, user_id, job_type, metadata, priority, scheduled_for, dedup_key, limit_key)
      VALUES (v_id, v_job_id, p_user_id, p_job_type, v_metadata, p_priority, p_scheduled_for, p_dedup_key, p_limit_key)
      ON CONFLICT (dedup_key) WHERE status IN ('pending', 'processing') AND dedup_key IS NOT NULL
      DO NOTHING;
      EXIT WHEN FOUND;

      SELECT j.id INTO v_live
      FROM queue_jobs j
      WHERE j.dedup_key = p_dedup_key AND j.status IN ('pending', 'processing');
      IF v_live IS NOT NULL THEN
        RETURN v_live;  -- the live job holding the key: already announced when it was added
      END IF;
    END LOOP;
  END IF;

  -- Flow control: a new keyed job voids the claims' "nothing keyed can start" hints
  -- (queue_keyed_bump, inline: its gate in shared mode to commit, then the sequence).
  IF p_limit_key IS NOT NULL THEN
    v_void := pg_advisory_xact_lock_shared(hashtextextended('@schema@.queue_keyed_generation', 0));
    v_void := nextval('queue_keyed_generation');
  END IF;

  -- Wake-up, inline (this is the hottest write path): as queue_wake_workers, a NOTIFY
  -- only when a worker is idle; the shared "gate" lock is held to commit.
  IF p_scheduled_for <= now() THEN
    v_mode := coalesce(current_setting('notify_sql.enqueue_notify', true), '');
    IF v_mode <> 'off' THEN
      v_void := pg_advisory_xact_lock_shared(hashtextextended('@schema@.queue_jobs:gate', 0));
      v_idle := v_mode = 'always' OR CASE WHEN pg_try_advisory_lock(hashtextextended('@schema@.queue_jobs:idle', 0))
                                          THEN NOT pg_advisory_unlock(hashtextextended('@schema@.queue_jobs:idle', 0))
                                          ELSE true END;
      IF v_idle THEN
        PERFORM pg_notify('@schema@.queue_jobs', p_job_type);
      END IF;
    END IF;
  END IF;
  RETURN v_id;
END;
$$;

COMMENT ON FUNCTION @schema@.add_queue_job(uuid, text, jsonb, integer, timestamptz, text, text) IS
  'Enqueues a job and returns its id; with a dedup key already held by a pending/processing job, returns that job''s id instead (also under concurrency). metadata.correlationId is added (a new uuid) when absent; p_limit_key puts the job under that key''s flow control. 22023 on an empty or over-long (200) job type, an over-long dedup key (500) or limit key (200), non-object metadata, NULL priority or schedule.';

GRANT EXECUTE ON FUNCTION @schema@.add_queue_job(uuid, text, jsonb, integer, timestamptz, text, text) TO service_role;
