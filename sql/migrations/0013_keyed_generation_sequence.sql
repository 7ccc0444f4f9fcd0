-- 0013_keyed_generation_sequence: two costs taken off the enqueue path.
--
-- 1. The keyed-claim generation (0012) becomes a sequence, ordered with the changes it
--    announces by an advisory gate, so that a keyed enqueue costs one nextval instead
--    of one row UPDATE (below).
-- 2. queue_jobs_correlation_id_idx (0011) leaves out the jobs whose correlationId is
--    their own id: add_queue_job(s) write that when the caller gives none, and
--    get_notification_trace reads such a job by its primary key. An entry per enqueued
--    job cost a bulk enqueue about a tenth of its time; the index keeps the jobs of
--    emitted events and of callers' own correlation ids. Dropping and rebuilding it
--    locks queue_jobs to commit (enqueues, claims and reads wait: about 0.3 s per
--    200,000 jobs, as in 0011); on a big install migrate at a quiet moment.
--
-- The generation, in detail.
--
-- What 0012's counter guarantees, and how the sequence keeps it. A claim trusts its
-- hint "no keyed job of these types can start before T" only while the generation it
-- read before computing the hint is unchanged. The danger is a change C (a keyed job
-- enqueued, pending again, a slot or a limit freed) that the hint's check did not see
-- while the generation does not move after the hint's read. A row counter excluded it
-- by being transactional. A sequence is not transactional (nextval is visible at
-- once, its change only at commit), so instead:
--   * every bump takes the generation's gate (the advisory key
--     '<schema>.queue_keyed_generation') in shared mode for the rest of its
--     transaction, BEFORE its nextval (queue_keyed_bump);
--   * the hint's writer (queue_keyed_hint) reads the generation first, then takes the
--     gate exclusively for an instant (only tried, never waited for: when a bump is in
--     flight, no hint is recorded this time), then checks the keys with a new snapshot.
-- A bump whose nextval came before the generation was read still held the gate then;
-- if the gate was free afterwards, that bump's transaction had ended, so the check
-- sees its change. A bump whose nextval came after moves the generation past what the
-- hint was stamped with. Either way the hint is never trusted past C.
--
-- The sequence starts above the old counter's sum, so no stamp of 0012 can match, and
-- is_called is true from the start (pg_sequence_last_value then never returns NULL).
-- Concurrent bumps do not wait for each other's commits (the striped rows of 0012
-- could), and the gate is shared, so enqueuers never wait on each other either.
--
-- Locks and time: instant on any install (a 16-row table dropped, two trigger
-- functions replaced), but for the index of 2 (above).

-- The old sum, kept in the session while the name changes hands (session, not
-- transaction: a tool may run this file one statement per transaction).
SELECT set_config('notify_sql.keyed_generation_start', (SELECT sum(n) + 1 FROM queue_keyed_generation)::text, false);
-- Internal since 0012 (docs/app-boundaries.md: apps neither read nor write it).
-- squawk-ignore ban-drop-table
DROP TABLE queue_keyed_generation;
CREATE SEQUENCE queue_keyed_generation AS bigint NO CYCLE;
SELECT setval('queue_keyed_generation', current_setting('notify_sql.keyed_generation_start')::bigint, true);
RESET notify_sql.keyed_generation_start;

COMMENT ON SEQUENCE queue_keyed_generation IS
  'Generation of the keyed jobs'' startability: moved (under its advisory gate) by every change that can let a keyed job start sooner; claim_pending_jobs trusts a keyed hint only while it is unchanged. Internal.';

REVOKE ALL ON SEQUENCE queue_keyed_generation FROM PUBLIC, anon, authenticated;
GRANT USAGE, SELECT ON SEQUENCE queue_keyed_generation TO service_role;

-- The two trigger functions of 0012, bumping through queue_keyed_bump (the one place
-- that knows how), their conditions and triggers unchanged.
CREATE OR REPLACE FUNCTION queue_keyed_changed()
RETURNS trigger
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  IF NEW.status = 'pending' AND NEW.limit_key IS NOT NULL THEN
    PERFORM queue_keyed_bump();
  ELSIF EXISTS (SELECT FROM queue_limits l WHERE l.limit_key = OLD.limit_key AND l.max_concurrent IS NOT NULL) THEN
    PERFORM queue_keyed_bump();
    PERFORM queue_wake_workers(ARRAY[OLD.job_type]);  -- only when a worker is idle
  END IF;
  RETURN NULL;
END;
$$;

COMMENT ON FUNCTION queue_keyed_changed() IS
  'Row trigger on queue_jobs: bumps queue_keyed_generation when a keyed job becomes pending again (or earlier, or under another key) or a capped key''s job leaves processing (then also wakes idle workers for its type).';

CREATE OR REPLACE FUNCTION queue_limit_relaxed()
RETURNS trigger
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  PERFORM queue_keyed_bump();
  RETURN NULL;
END;
$$;

COMMENT ON FUNCTION queue_limit_relaxed() IS
  'Trigger on queue_limits: bumps queue_keyed_generation when a limit is removed (also by TRUNCATE) or may have been relaxed.';

-- ACCESS EXCLUSIVE on queue_jobs for the moment of the drop (the migration holds it to
-- commit, behind the build below).
-- squawk-ignore require-concurrent-index-deletion
DROP INDEX queue_jobs_correlation_id_idx;
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX queue_jobs_correlation_id_idx ON queue_jobs ((metadata ->> 'correlationId'))
  WHERE (metadata ->> 'correlationId') <> id::text;
