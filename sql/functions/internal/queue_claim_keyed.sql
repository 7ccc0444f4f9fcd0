-- queue_claim_keyed: picks and locks up to p_limit jobs when keyed jobs are pending.
--
-- The claim_pending_jobs path for a queue holding jobs with a limit key; returns the
-- picked ids (locked, still pending), the start time to stamp on each, and how many
-- of them are keyed (0: the caller may record that no keyed job can start yet).
--
-- Order (fair share). Within the best priority first, the due jobs are taken in rounds:
-- round r holds the r-th due job of every key, and jobs without a key count as one
-- more key served first in each round; within a key the order stays scheduled_for.
-- Keys are visited in text order starting after the last key this session served (a
-- session setting, so each worker rotates through the keys by itself, with no shared
-- row to contend on), wrapping around. So a key with 10 jobs enqueued behind another
-- key's 50,000 gets one job per round, like every other key. Keys are found by a
-- skip scan of queue_jobs_keyed_claim_idx (one index descent per key), never by
-- reading a key's backlog. At most 32 keys per call are visited for nothing (held
-- back, nothing due, or being claimed by another worker): then the walk stops and
-- the session's next call continues after them, so many throttled keys cost each
-- claim a bounded amount and every key is still reached in turn.
--
-- Limits. A key with a queue_limits row is only taken under that row's lock, taken
-- with SKIP LOCKED (a key another worker is claiming right now is left to it, nobody
-- waits). Under the lock: the bucket is refilled at max_per_second up to burst
-- (capacity max(burst, 1); one token per start), the key's processing jobs are
-- counted against max_concurrent, a pause (paused_until) allows nothing, and at most
-- the allowance is locked and stamped with the bucket's clock (clock_timestamp() read
-- under the lock, so strictly ordered across workers). Hence, however many workers
-- claim: in any T seconds of started_at a key starts at most max(burst, 1) +
-- max_per_second * T jobs, and never more than max_concurrent of its jobs process at
-- once. A held-back key costs the others nothing but its index descent.
CREATE FUNCTION @schema@.queue_claim_keyed(p_job_types text[], p_limit integer, p_exclude uuid[])
RETURNS TABLE (ids uuid[], starts timestamptz[], keyed integer)
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
DECLARE
  v_cursor constant text := coalesce(current_setting('notify_sql.claim_cursor_@schema@', true), '');
  v_prio integer;
  v_floor bigint := -2147483648;  -- next priority level is >= this
  k record;
  v_visits integer := 0;
  v_pos integer := 0;
  v_heads integer := 0;
  v_allow integer;
  v_limit queue_limits%ROWTYPE;
  v_now timestamptz;
  v_tokens double precision;
  v_got uuid[];
  v_last_key text;
  v_last_visited text;
  -- candidates: id, priority, round, rotation position, key (NULL: no key)
  c_id uuid[] := '{}'::uuid[];
  c_prio integer[] := '{}'::integer[];
  c_round integer[] := '{}'::integer[];
  c_pos integer[] := '{}'::integer[];
  c_key text[] := '{}'::text[];
  c_allow integer[] := '{}'::integer[];  -- per candidate: its key's estimated allowance
  v_ids uuid[] := '{}'::uuid[];
  v_starts timestamptz[] := '{}'::timestamptz[];
  v_keyed integer := 0;  -- keyed jobs in the batch (none: claim_pending_jobs may record a hint)
  r record;
BEGIN
  -- Called by claim_pending_jobs with checked arguments; checked again for direct calls.
  IF p_job_types IS NULL OR cardinality(p_job_types) = 0 OR array_position(p_job_types, NULL) IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_job_types: must be a non-empty array of job types without NULLs';
  END IF;
  IF p_limit IS NULL OR p_limit > 1000 THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'p_limit: must be at most 1000';
  END IF;
  IF p_exclude IS NULL OR cardinality(p_exclude) > 1000 THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'p_exclude: must be an array of at most 1000 ids';
  END IF;
  IF p_limit < 1 THEN
    RETURN QUERY SELECT v_ids, v_starts, 0;
    RETURN;
  END IF;

  -- Unkeyed jobs: one group, position 0 in every round (round = place in claim order).
  SELECT coalesce(array_agg(u.id ORDER BY u.priority, u.scheduled_for), '{}'),
         coalesce(array_agg(u.priority ORDER BY u.priority, u.scheduled_for), '{}')
  INTO c_id, c_prio
  FROM (SELECT j.id, j.priority, j.scheduled_for
        FROM queue_jobs j
        WHERE j.status = 'pending' AND j.limit_key IS NULL AND j.scheduled_for <= now()
          AND j.job_type = ANY (p_job_types) AND j.id <> ALL (p_exclude)
        ORDER BY j.priority, j.scheduled_for
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED) u;
  c_round := ARRAY(SELECT generate_series(1, cardinality(c_id)));
  c_pos := array_fill(0, ARRAY[cardinality(c_id)]);
  c_key := array_fill(NULL::text, ARRAY[cardinality(c_id)]);
  c_allow := array_fill(p_limit, ARRAY[cardinality(c_id)]);

  -- Keyed heads, priority level by priority level, keys in turn from the cursor.
  <<levels>>
  LOOP
    SELECT j.priority INTO v_prio
    FROM queue_jobs j
    WHERE j.status = 'pending' AND j.limit_key IS NOT NULL AND j.priority >= v_floor
    ORDER BY j.priority, j.limit_key
    LIMIT 1;
    EXIT levels WHEN NOT FOUND;
    v_floor := v_prio::bigint + 1;
    -- Enough candidates of better priority already: this level cannot be reached.
    EXIT levels WHEN (SELECT count(*) FROM unnest(c_prio) p WHERE p < v_prio) >= p_limit;
    -- Keys after the cursor, then (wrapping) the keys up to it: each segment is one
    -- recursive skip scan (one index descent per key) joined to the keys' limits.
    FOR v_segment IN 1..2 LOOP
      EXIT WHEN v_segment = 2 AND v_cursor = '';
      FOR k IN
        WITH RECURSIVE walk(key, n) AS (
          SELECT (SELECT j.limit_key FROM queue_jobs j
                  WHERE j.status = 'pending' AND j.limit_key IS NOT NULL AND j.priority = v_prio
                    AND j.limit_key > CASE WHEN v_segment = 1 THEN v_cursor ELSE '' END
                  ORDER BY j.priority, j.limit_key LIMIT 1), 1
          UNION ALL
          SELECT (SELECT j.limit_key FROM queue_jobs j
                  WHERE j.status = 'pending' AND j.limit_key IS NOT NULL AND j.priority = v_prio
                    AND j.limit_key > w.key
                  ORDER BY j.priority, j.limit_key LIMIT 1), w.n + 1
          FROM walk w
          WHERE w.key IS NOT NULL AND w.n < p_limit + 32 AND (v_segment = 1 OR w.key < v_cursor)
        )
        SELECT w.key, l.limit_key IS NOT NULL AS limited, l.paused_until, l.max_per_second,
               l.burst, l.tokens, l.refilled_at, l.max_concurrent
        FROM walk w LEFT JOIN queue_limits l ON l.limit_key = w.key
        WHERE w.key IS NOT NULL AND (v_segment = 1 OR w.key <= v_cursor)
        ORDER BY w.n
      LOOP
        -- Keys visited for nothing (held back, nothing due of these types, locked)
        -- are bounded per call: past the budget the walk stops, and the next call of
        -- this session resumes after the last key visited.
        EXIT levels WHEN v_visits - v_heads >= 32;
        v_visits := v_visits + 1;
        v_last_visited := k.key;

        -- Estimated allowance (read without locking; re-checked under the lock below).
        v_allow := p_limit;
        IF k.paused_until > now() THEN
          v_allow := 0;
        END IF;
        IF k.max_per_second IS NOT NULL THEN
          v_allow := least(v_allow, floor(least(greatest(k.burst, 1), k.tokens + k.max_per_second
            * greatest(extract(epoch FROM clock_timestamp() - k.refilled_at), 0)))::integer);
        END IF;
        IF k.max_concurrent IS NOT NULL AND v_allow > 0 THEN
          v_allow := least(v_allow, k.max_concurrent - queue_key_running(k.key, p_exclude));
        END IF;
        CONTINUE WHEN v_allow <= 0;

        v_got := ARRAY(
          SELECT j.id FROM queue_jobs j
          WHERE j.status = 'pending' AND j.limit_key IS NOT NULL AND j.priority = v_prio
            AND j.limit_key = k.key AND j.scheduled_for <= now()
            AND j.job_type = ANY (p_job_types) AND j.id <> ALL (p_exclude)
          ORDER BY j.priority, j.limit_key, j.scheduled_for
          LIMIT 1
          FOR UPDATE SKIP LOCKED);
        CONTINUE WHEN cardinality(v_got) = 0;
        v_pos := v_pos + 1;
        v_heads := v_heads + 1;
        c_id := c_id || v_got[1]; c_prio := c_prio || v_prio; c_round := c_round || 1;
        c_pos := c_pos || v_pos; c_key := c_key || k.key; c_allow := c_allow || v_allow;
        EXIT levels WHEN v_heads >= p_limit;
      END LOOP;
    END LOOP;
  END LOOP;

  -- Few keys: later rounds from the keys found, each at most as deep as the batch
  -- could reach if every other key gave one job (so the batch is never left short
  -- while a key has jobs it may start).
  IF v_heads > 0 AND v_heads < p_limit THEN
    FOR r IN
      SELECT c.key, c.prio, c.pos, least(c.allow, p_limit - v_heads + 1) AS depth
      FROM unnest(c_key, c_prio, c_pos, c_allow) AS c(key, prio, pos, allow)
      WHERE c.key IS NOT NULL AND c.allow > 1
    LOOP
      v_got := ARRAY(
        SELECT j.id FROM queue_jobs j
        WHERE j.status = 'pending' AND j.limit_key IS NOT NULL AND j.priority = r.prio
          AND j.limit_key = r.key AND j.scheduled_for <= now()
          AND j.job_type = ANY (p_job_types) AND j.id <> ALL (p_exclude) AND j.id <> ALL (c_id)
        ORDER BY j.priority, j.limit_key, j.scheduled_for
        LIMIT r.depth - 1
        FOR UPDATE SKIP LOCKED);
      FOR i IN 1 .. cardinality(v_got) LOOP
        c_id := c_id || v_got[i]; c_prio := c_prio || r.prio; c_round := c_round || (i + 1);
        c_pos := c_pos || r.pos; c_key := c_key || r.key; c_allow := c_allow || 0;
      END LOOP;
    END LOOP;
  END IF;

  -- No keyed job can start (every key held back): the unkeyed jobs are the batch.
  IF v_heads = 0 THEN
    IF v_visits > 0 THEN
      PERFORM set_config('notify_sql.claim_cursor_@schema@', v_last_visited, false);
    END IF;
    RETURN QUERY SELECT c_id, array_fill(now(), ARRAY[cardinality(c_id)]), 0;
    RETURN;
  END IF;

  -- The batch: the first p_limit candidates in (priority, round, position) order; then
  -- each limited key's share is cut to what its bucket allows under its row lock.
  FOR r IN
    SELECT c.key, array_agg(c.id ORDER BY c.round) AS ids, min(c.pos) AS pos
    FROM (SELECT * FROM unnest(c_id, c_prio, c_round, c_pos, c_key) AS c(id, prio, round, pos, key)
          ORDER BY c.prio, c.round, c.pos
          LIMIT p_limit) c
    GROUP BY c.key
    ORDER BY min(c.pos)
  LOOP
    IF r.key IS NULL THEN
      v_ids := v_ids || r.ids;
      v_starts := v_starts || array_fill(now(), ARRAY[cardinality(r.ids)]);
      CONTINUE;
    END IF;
    SELECT * INTO v_limit FROM queue_limits l WHERE l.limit_key = r.key FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
      PERFORM FROM queue_limits l WHERE l.limit_key = r.key;
      CONTINUE WHEN FOUND;  -- limited, and another worker is claiming it right now
      v_ids := v_ids || r.ids;
      v_starts := v_starts || array_fill(now(), ARRAY[cardinality(r.ids)]);
      v_keyed := v_keyed + cardinality(r.ids);
      v_last_key := r.key;
      CONTINUE;
    END IF;
    v_now := greatest(clock_timestamp(), v_limit.refilled_at);
    v_allow := cardinality(r.ids);
    v_tokens := NULL;
    IF v_limit.paused_until > v_now THEN
      v_allow := 0;
    END IF;
    IF v_limit.max_per_second IS NOT NULL THEN
      v_tokens := least(greatest(v_limit.burst, 1)::double precision,
        v_limit.tokens + v_limit.max_per_second * extract(epoch FROM v_now - v_limit.refilled_at));
      v_allow := least(v_allow, floor(v_tokens)::integer);
    END IF;
    IF v_limit.max_concurrent IS NOT NULL AND v_allow > 0 THEN
      v_allow := least(v_allow, v_limit.max_concurrent - queue_key_running(r.key, p_exclude));
    END IF;
    v_allow := greatest(v_allow, 0);
    UPDATE queue_limits l
    SET tokens = coalesce(v_tokens - v_allow, l.tokens),
        refilled_at = v_now,
        window_start = CASE WHEN v_now >= l.window_start + interval '1 minute' THEN v_now ELSE l.window_start END,
        prev_window_starts = CASE WHEN v_now >= l.window_start + interval '2 minutes' THEN 0
                                  WHEN v_now >= l.window_start + interval '1 minute' THEN l.window_starts
                                  ELSE l.prev_window_starts END,
        window_starts = CASE WHEN v_now >= l.window_start + interval '1 minute' THEN v_allow
                             ELSE l.window_starts + v_allow END
    WHERE l.limit_key = r.key;
    IF v_allow > 0 THEN
      v_ids := v_ids || r.ids[1:v_allow];
      v_starts := v_starts || array_fill(v_now, ARRAY[v_allow]);
      v_keyed := v_keyed + v_allow;
      v_last_key := r.key;
    END IF;
  END LOOP;

  IF v_visits - v_heads >= 32 THEN
    v_last_key := v_last_visited;  -- budget spent: resume after the keys just passed over
  END IF;
  IF v_last_key IS NOT NULL THEN
    PERFORM set_config('notify_sql.claim_cursor_@schema@', v_last_key, false);
  END IF;
  RETURN QUERY SELECT v_ids, v_starts, v_keyed;
END;
$$;

COMMENT ON FUNCTION @schema@.queue_claim_keyed(text[], integer, uuid[]) IS
  'Internal to claim_pending_jobs: picks and locks up to p_limit due jobs when keyed jobs are pending (keys in turn, limits enforced under queue_limits row locks); returns their ids, start stamps and how many are keyed.';

GRANT EXECUTE ON FUNCTION @schema@.queue_claim_keyed(text[], integer, uuid[]) TO service_role;
