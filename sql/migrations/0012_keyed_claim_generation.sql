-- 0012_keyed_claim_generation: a shared counter that says "the keyed jobs' startability
-- may have changed", so a claim can skip the keyed walk while no keyed job can start.
--
-- claim_pending_jobs keeps a hint "no keyed job of these types can start before T"
-- (queue_keyed_hint; per session, and shared in queue_keyed_hints below) together
-- with the counter's value read before it was computed.
-- The hint holds while the counter is unchanged and the clock is before T: every event
-- that can make a keyed job startable earlier than the clock alone would bumps it.
--   * a keyed job enqueued: add_queue_job / add_queue_jobs (one statement each);
--   * a keyed job becoming pending again, or moved to an earlier time or another key,
--     and a job of a concurrency-capped key leaving `processing` (a slot frees): the
--     trigger below, whoever updates the row;
--   * a limit changed, removed or un-paused (set_queue_limit, or an UPDATE, DELETE or
--     TRUNCATE of queue_limits by hand): the triggers on queue_limits below. (A longer pause only holds
--     jobs back longer, and a claim only spends tokens: neither can void a hint, and
--     the claim's own row updates never call the trigger.)
-- The counter is transactional on purpose: the bump commits with the change it
-- announces, so a claim that read the old value either sees the change in its walk or
-- reads a new value next time. (A sequence would be visible before the commit: a claim
-- could read the new value, miss the uncommitted job, and trust the hint after it.)
-- Striped over 16 rows (the writer's backend pid picks one) so that concurrent keyed
-- enqueues rarely wait for each other's commit; the claim reads the sum (by the primary
-- key: the claim plans with sequential scans off, and on PG15 their penalty cost would
-- otherwise switch JIT on for this one-page read). n is in no index: updates stay HOT.
CREATE TABLE queue_keyed_generation (
  slot integer PRIMARY KEY CHECK (slot BETWEEN 0 AND 15),
  n    bigint NOT NULL DEFAULT 0
) WITH (fillfactor = 20, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);

INSERT INTO queue_keyed_generation (slot) SELECT generate_series(0, 15);

COMMENT ON TABLE queue_keyed_generation IS
  'Striped counter bumped (in the same transaction) by every change that can let a keyed job start earlier: keyed enqueue, a keyed job made pending again, a capped key''s job leaving processing, a limit relaxed or removed. Read (summed) by claim_pending_jobs to validate its "no keyed job can start before T" hints.';

ALTER TABLE queue_keyed_generation ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON queue_keyed_generation FROM PUBLIC, anon, authenticated;
GRANT SELECT, UPDATE ON queue_keyed_generation TO service_role;
CREATE POLICY service_role_all ON queue_keyed_generation FOR ALL TO service_role USING (true) WITH CHECK (true);

-- The hints themselves, shared: a claim whose own session has no valid hint looks here
-- before walking the keys, so one check (queue_keyed_hint) serves every worker, also
-- short-lived sessions. Keyed by md5 of the stamp (generation sum and job types, which
-- may be long); gen lets the writer drop the rows of older generations. UNLOGGED: a
-- crash empties it, which only costs one more check.
CREATE UNLOGGED TABLE queue_keyed_hints (
  stamp_md5 text PRIMARY KEY,
  gen       bigint NOT NULL,
  until     timestamptz NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);

COMMENT ON TABLE queue_keyed_hints IS
  'Per generation of queue_keyed_generation and set of job types: until when no keyed job can start. Written by queue_keyed_hint, read by claim_pending_jobs.';

ALTER TABLE queue_keyed_hints ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON queue_keyed_hints FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON queue_keyed_hints TO service_role;
CREATE POLICY service_role_all ON queue_keyed_hints FOR ALL TO service_role USING (true) WITH CHECK (true);

-- Row trigger on queue_jobs: bumps the counter when an update can make a keyed job
-- startable sooner. A job leaving `processing` matters only for a key with a
-- concurrency cap (one PK probe of queue_limits), and then idle workers are woken for
-- its type, since no clock says when a slot frees (next_limited_start cannot).
CREATE FUNCTION queue_keyed_changed()
RETURNS trigger
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  IF NEW.status = 'pending' AND NEW.limit_key IS NOT NULL THEN
    UPDATE queue_keyed_generation g SET n = g.n + 1 WHERE g.slot = pg_backend_pid() % 16;
  ELSIF EXISTS (SELECT FROM queue_limits l WHERE l.limit_key = OLD.limit_key AND l.max_concurrent IS NOT NULL) THEN
    UPDATE queue_keyed_generation g SET n = g.n + 1 WHERE g.slot = pg_backend_pid() % 16;
    PERFORM queue_wake_workers(ARRAY[OLD.job_type]);  -- only when a worker is idle
  END IF;
  RETURN NULL;
END;
$$;

COMMENT ON FUNCTION queue_keyed_changed() IS
  'Row trigger on queue_jobs: bumps queue_keyed_generation when a keyed job becomes pending again (or earlier, or under another key) or a capped key''s job leaves processing (then also wakes idle workers for its type).';

-- Only the columns these conditions read; heartbeats and claims of unkeyed jobs never
-- call the function (the WHEN clause is evaluated in the executor).
CREATE TRIGGER queue_keyed_changed AFTER UPDATE OF status, limit_key, scheduled_for ON queue_jobs
  FOR EACH ROW
  WHEN ((OLD.status = 'processing' AND OLD.limit_key IS NOT NULL AND NEW.status <> 'processing')
        OR (NEW.status = 'pending' AND NEW.limit_key IS NOT NULL
            AND (OLD.status <> 'pending' OR OLD.limit_key IS DISTINCT FROM NEW.limit_key
                 OR NEW.scheduled_for < OLD.scheduled_for)))
  EXECUTE FUNCTION queue_keyed_changed();

-- Row trigger on queue_limits: a limit relaxed (any change of rate, burst or cap, a
-- pause shortened or lifted) or removed.
CREATE FUNCTION queue_limit_relaxed()
RETURNS trigger
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  UPDATE queue_keyed_generation g SET n = g.n + 1 WHERE g.slot = pg_backend_pid() % 16;
  RETURN NULL;
END;
$$;

COMMENT ON FUNCTION queue_limit_relaxed() IS
  'Trigger on queue_limits: bumps queue_keyed_generation when a limit is removed (also by TRUNCATE) or may have been relaxed.';

CREATE TRIGGER queue_limit_relaxed AFTER UPDATE ON queue_limits
  FOR EACH ROW
  WHEN (OLD.max_per_second IS DISTINCT FROM NEW.max_per_second
        OR OLD.burst IS DISTINCT FROM NEW.burst
        OR OLD.max_concurrent IS DISTINCT FROM NEW.max_concurrent
        OR coalesce(NEW.paused_until < OLD.paused_until, OLD.paused_until IS NOT NULL))
  EXECUTE FUNCTION queue_limit_relaxed();
CREATE TRIGGER queue_limit_removed AFTER DELETE ON queue_limits
  FOR EACH ROW EXECUTE FUNCTION queue_limit_relaxed();
CREATE TRIGGER queue_limits_truncated AFTER TRUNCATE ON queue_limits
  FOR EACH STATEMENT EXECUTE FUNCTION queue_limit_relaxed();

-- The console's read role shows each key's limit and state (queue_limit_status).
GRANT SELECT ON queue_limits TO notify_sql_monitor;
CREATE POLICY monitor_reads ON queue_limits FOR SELECT TO notify_sql_monitor USING (true);
