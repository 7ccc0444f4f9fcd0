-- queue_keyed_hint: after a keyed walk that started no keyed job, records in the
-- session, and for every other session in queue_keyed_hints, "no keyed job of these
-- types can start before T", so that the following claims skip the walk
-- (claim_pending_jobs) until T or until queue_keyed_generation (a sequence) moves.
--
-- p_stamp is the generation and the job types, read by the claim BEFORE its walk: a
-- change whose bump that read includes has committed once the generation's gate is free
-- (tried below), so it shows in queue_keyed_next_start (which then answers "now": no
-- hint); a later bump moves the generation (the hint is void at the next claim).
-- Nothing is recorded when a job can start now (the walk, bounded per call, reaches
-- its key in turn).
--
-- The check reads every key, so it is rationed: one session at a time (a transaction
-- advisory lock tried, never waited for; so the upsert's row lock is never contended
-- and the DELETE of older rows never meets another writer), and after a check the
-- session checks again only once ten times its duration has passed (at most about a
-- tenth of a worker's time with very many keys; a check takes about 0.1 s with 10,000
-- keys, 3 ms with 100). The ration only delays the fast path; a hint is exact
-- whenever it is used.
CREATE FUNCTION @schema@.queue_keyed_hint(p_job_types text[], p_stamp text)
RETURNS void
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
DECLARE
  v_begin timestamptz := clock_timestamp();
  v_until timestamptz;
  v_gen bigint;
BEGIN
  IF p_job_types IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'p_job_types: must not be NULL';
  END IF;
  IF p_stamp IS NULL OR length(p_stamp) > 1000000 OR p_stamp !~ '^[0-9]{1,19}:' THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_stamp: must be "<generation>:<job types>", at most 1000000 characters';
  END IF;
  IF extract(epoch FROM v_begin)
     < coalesce(nullif(current_setting('notify_sql.keyed_check_after_@schema@', true), '')::double precision, 0)
     -- one session checks at a time; the others keep walking meanwhile
     OR NOT pg_try_advisory_xact_lock(hashtextextended('@schema@.queue_keyed_hint', 0)) THEN
    RETURN;
  END IF;
  -- No bump still uncommitted (0013): the generation's gate taken exclusively for an
  -- instant, never waited for. Bumps hold it in shared mode from before their nextval
  -- to their commit, so any bump the stamp's generation includes has ended, and the
  -- check below (a new snapshot) sees its change. When one is in flight, no hint.
  IF NOT pg_try_advisory_lock(hashtextextended('@schema@.queue_keyed_generation', 0)) THEN
    RETURN;
  END IF;
  PERFORM pg_advisory_unlock(hashtextextended('@schema@.queue_keyed_generation', 0));
  v_until := queue_keyed_next_start(p_job_types);
  PERFORM set_config('notify_sql.keyed_check_after_@schema@',
    (extract(epoch FROM clock_timestamp()) + 10 * extract(epoch FROM clock_timestamp() - v_begin))::text, false);
  IF v_until > clock_timestamp() THEN
    PERFORM set_config('notify_sql.keyed_hint_@schema@', p_stamp, false);
    PERFORM set_config('notify_sql.keyed_until_@schema@',
      CASE WHEN isfinite(v_until) THEN extract(epoch FROM v_until)::text ELSE 'Infinity' END, false);
    v_gen := split_part(p_stamp, ':', 1)::bigint;
    INSERT INTO queue_keyed_hints AS h (stamp_md5, gen, until)
    VALUES (md5(p_stamp), v_gen, v_until)
    ON CONFLICT (stamp_md5) DO UPDATE SET until = excluded.until;
    -- Older generations' hints can never hold again (the generation only grows).
    DELETE FROM queue_keyed_hints h WHERE h.gen < v_gen;
  END IF;
END;
$$;

COMMENT ON FUNCTION @schema@.queue_keyed_hint(text[], text) IS
  'Internal to claim_pending_jobs: after a keyed walk that started nothing, records (rationed) until when no keyed job of these types can start, stamped with the generation read before the walk.';

GRANT EXECUTE ON FUNCTION @schema@.queue_keyed_hint(text[], text) TO service_role;
