-- claim_pending_jobs: hands each due job to at most one worker, within flow control.
--
-- Why it is safe and bounded:
-- * Rows are picked into an array by SELECTs with LIMIT and FOR UPDATE SKIP LOCKED, and
--   the UPDATE touches exactly `id = ANY (that array)` after cutting it to
--   p_batch_size. The array is computed once, so a batch can never exceed p_batch_size
--   (an `id IN (SELECT ... LIMIT n)` subquery may be re-executed by a nested loop and
--   claim more).
-- * SKIP LOCKED: concurrent claimers take disjoint rows without waiting on each other.
--   FOR UPDATE re-checks the WHERE clause on the newest row version before locking it,
--   and the lock is held until commit, so exactly the picked pending rows are claimed.
-- * Each claim writes a fresh processing_token: complete / fail / heartbeat succeed only
--   with it, so a worker whose job was reset as stalled and re-claimed is fenced out.
-- * Only due jobs (scheduled_for <= now()) in order of priority, then scheduled_for.
-- * attempts is not touched: on the claimed row it counts the earlier attempts (an
--   attempt that fails adds one, in fail_queue_jobs or reset_stalled_jobs).
--
-- Flow control (limit keys, set_queue_limit). Jobs without a limit key are claimed by
-- exactly the old statement, over their own partial index; while no keyed job is
-- pending, that statement and one empty-index probe are all a claim costs. Otherwise
-- queue_claim_keyed picks the batch: keys served in turn, each key's token bucket and
-- concurrency cap enforced under a lock of its queue_limits row (see there).
--
-- No head-of-line cost beside held-back keys. A keyed walk that starts no keyed job
-- records "no keyed job of these types can start before T" (queue_keyed_hint: T is
-- the earliest token refill, pause end or scheduled_for over every key with jobs of
-- these types), stamped with queue_keyed_generation read before the walk, in the
-- session and for the other sessions (queue_keyed_hints, read when the session's own
-- copy is void). While the generation is unchanged and the clock is before T, the
-- claim takes the unkeyed statement as if no keyed job were pending; the keys cost it
-- one statement (the keyed-index probe and the sequence's last value). Every change
-- that can let a keyed job start sooner than the clock alone (keyed enqueue, a keyed
-- job pending again, a capped key's job leaving processing, a limit relaxed or
-- removed) moves the generation under its gate (queue_keyed_bump, 0013), so a
-- hint is never trusted past such a change: a held-back job is claimed by the first
-- claim at or after the moment its limit allows, a new keyed job by the first claim
-- after its commit.
--
-- Idle workers: a claim that does not fill its batch marks the session idle (enqueue
-- then sends a NOTIFY) and claims once more, so no job committed meanwhile goes
-- unannounced; a full claim marks it busy (queue_worker_idle). A claim that finds
-- nothing because every due job is held back by its key's limit: next_limited_start
-- says when the first of them may start.
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
  v_ids uuid[] := '{}'::uuid[];
  v_starts timestamptz[] := '{}'::timestamptz[];
  v_more uuid[];
  v_more_starts timestamptz[];
  v_pass integer := 0;
  v_stamp text;  -- generation and types read before a keyed walk (NULL: no walk)
  v_keyed integer;
  v_until timestamptz;
  v_gen bigint;
BEGIN
  IF p_job_types IS NULL OR cardinality(p_job_types) = 0 OR array_position(p_job_types, NULL) IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_job_types: must be a non-empty array of job types without NULLs';
  END IF;
  IF p_batch_size IS NULL OR p_batch_size < 1 OR p_batch_size > 1000 THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('p_batch_size: must be between 1 and 1000, got %s', coalesce(p_batch_size::text, 'NULL'));
  END IF;

  LOOP
    v_pass := v_pass + 1;
    -- Any keyed job pending? One probe of a partial index that is empty then; only if
    -- so, the same statement reads the generation (one executor run, not two: this is
    -- the whole cost of held-back keys to a claim while its hint holds).
    SELECT pg_sequence_last_value('queue_keyed_generation') INTO v_gen
    WHERE EXISTS (SELECT FROM queue_jobs j WHERE j.status = 'pending' AND j.limit_key IS NOT NULL);
    v_stamp := NULL;
    IF FOUND THEN
      v_stamp := v_gen::text || ':' || p_job_types::text;
      IF v_stamp = current_setting('notify_sql.keyed_hint_@schema@', true)
         AND extract(epoch FROM clock_timestamp())
             < current_setting('notify_sql.keyed_until_@schema@', true)::double precision THEN
        v_stamp := NULL;  -- the hint holds: no keyed job of these types can start yet
      ELSE
        -- Another session's hint for the same generation and types holds as well.
        v_until := (SELECT h.until FROM queue_keyed_hints h WHERE h.stamp_md5 = md5(v_stamp));
        IF v_until > clock_timestamp() THEN
          PERFORM set_config('notify_sql.keyed_hint_@schema@', v_stamp, false),
                  set_config('notify_sql.keyed_until_@schema@',
                    CASE WHEN isfinite(v_until) THEN extract(epoch FROM v_until)::text ELSE 'Infinity' END, false);
          v_stamp := NULL;
        END IF;
      END IF;
    END IF;
    IF v_stamp IS NULL THEN
      v_more := ARRAY(
        SELECT j.id
        FROM queue_jobs j
        WHERE j.status = 'pending'
          AND j.limit_key IS NULL
          AND j.scheduled_for <= now()
          AND j.job_type = ANY (p_job_types)
          AND j.id <> ALL (v_ids)
        ORDER BY j.priority, j.scheduled_for
        LIMIT p_batch_size - cardinality(v_ids)
        FOR UPDATE SKIP LOCKED);
      v_more_starts := array_fill(now(), ARRAY[cardinality(v_more)]);
    ELSE
      SELECT k.ids, k.starts, k.keyed INTO v_more, v_more_starts, v_keyed
      FROM queue_claim_keyed(p_job_types, p_batch_size - cardinality(v_ids), v_ids) k;
      IF v_keyed = 0 THEN
        PERFORM queue_keyed_hint(p_job_types, v_stamp);
      END IF;
    END IF;
    v_ids := v_ids || v_more;
    v_starts := v_starts || v_more_starts;
    -- Idle bookkeeping, one current_setting() on the busy path.
    EXIT WHEN v_pass = 2
      OR (cardinality(v_ids) < p_batch_size)
         = (coalesce(current_setting('notify_sql.idle_@schema@', true), '') = 'on')
      OR NOT queue_worker_idle(cardinality(v_ids) < p_batch_size);
  END LOOP;
  IF cardinality(v_ids) = 0 THEN
    RETURN;
  END IF;

  RETURN QUERY
  WITH claimed AS (
    UPDATE queue_jobs j
    SET status = 'processing',
        processing_token = gen_random_uuid(),
        started_at = s.started_at,
        heartbeat_at = NULL,
        updated_at = now()
    FROM unnest(v_ids, v_starts) AS s(id, started_at)
    WHERE j.id = s.id
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
  'Claims at most p_batch_size due pending jobs of the given types (priority, then scheduled_for; keys of equal priority in turn; never beyond a key''s rate, burst, concurrency cap or pause), each with a fresh processing_token; attempts on the returned rows counts the earlier attempts. 22023 on an empty type list or a batch size outside 1..1000.';

GRANT EXECUTE ON FUNCTION @schema@.claim_pending_jobs(text[], integer) TO service_role;
