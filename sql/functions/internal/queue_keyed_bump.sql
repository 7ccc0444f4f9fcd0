-- queue_keyed_bump: announces that a keyed job may be able to start sooner.
--
-- Moves queue_keyed_generation (a sequence, 0013) after taking its gate (the advisory
-- key '<schema>.queue_keyed_generation') in shared mode for the rest of the caller's transaction. Every claim's "no keyed job
-- can start before T" hint stamped with an older generation is void at once; and the
-- hint's writer, which reads the generation before it tries the gate exclusively, can
-- only record a hint once no bump it might have missed is still uncommitted (0013
-- explains why this is as safe as 0012's transactional counter). Shared mode: bumps
-- and enqueues never wait for each other. A gate of its own, not the enqueue gate of
-- queue_wake_workers: the hint's writer is then held off only while a keyed change is
-- in flight, not by every enqueue. Call it after the change it announces, in
-- the same transaction.
--
-- add_queue_job repeats these two statements inline: it is the hottest write path,
-- and a call of a function with a SET clause costs it more than both together.
CREATE FUNCTION @schema@.queue_keyed_bump()
RETURNS void
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  -- The select list runs in order: the gate first.
  PERFORM pg_advisory_xact_lock_shared(hashtextextended('@schema@.queue_keyed_generation', 0)),
          nextval('queue_keyed_generation');
END;
$$;

COMMENT ON FUNCTION @schema@.queue_keyed_bump() IS
  'Internal: takes the generation''s gate (shared, to commit) and moves queue_keyed_generation; voids every session''s keyed-claim hint.';

GRANT EXECUTE ON FUNCTION @schema@.queue_keyed_bump() TO service_role;
