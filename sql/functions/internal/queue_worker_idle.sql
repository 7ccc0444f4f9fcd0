-- queue_worker_idle: records whether this session's worker is idle (for queue_wake_workers).
--
-- Called by claim_pending_jobs: p_idle = true after a claim that did not fill its batch
-- (the worker is about to wait), false after one that did. Idle means holding a shared
-- session-level advisory lock on the "idle" key; a session GUC remembers it, so the
-- busy path costs one current_setting() and nothing else. Session locks go with the
-- session, so a worker that dies stops counting as idle.
--
-- Becoming idle returns true when the caller must claim once more, after waiting until
-- every other transaction that had a transaction id when the idle lock was taken has
-- ended.
-- An enqueuer checks for idle workers after its insert, so one that checked before this
-- worker registered already had a transaction id then and is among those waited for:
-- once they have ended, its job is visible to the claim that follows, or it was rolled
-- back. So a job is either seen by that claim or announced by a NOTIFY. Enqueuers never
-- wait for this, and take no lock for it. The wait lasts at most about 20 ms: behind a
-- long transaction (one that enqueued, or any other writer), the worker gives up, and
-- such a job is found by its next poll.
CREATE FUNCTION @schema@.queue_worker_idle(p_idle boolean)
RETURNS boolean
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
DECLARE
  v_was_idle constant boolean := coalesce(current_setting('notify_sql.idle_@schema@', true), '') = 'on';
  v_own xid8;
BEGIN
  IF p_idle IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'p_idle: must not be NULL';
  END IF;
  IF p_idle = v_was_idle THEN
    RETURN false;
  END IF;
  IF NOT p_idle THEN
    PERFORM pg_advisory_unlock_shared(hashtextextended('@schema@.queue_jobs:idle', 0));
    PERFORM set_config('notify_sql.idle_@schema@', 'off', false);
    RETURN false;
  END IF;
  PERFORM pg_advisory_lock_shared(hashtextextended('@schema@.queue_jobs:idle', 0));
  PERFORM set_config('notify_sql.idle_@schema@', 'on', false);
  -- Transaction ids are handed out in order, so this transaction's id, taken now, is
  -- newer than every enqueuer's that checked before, and a snapshot whose oldest
  -- running id is this one's has none of them running.
  v_own := pg_current_xact_id();
  FOR i IN 1..40 LOOP
    EXIT WHEN pg_snapshot_xmin(pg_current_snapshot()) >= v_own;
    PERFORM pg_sleep(0.0005);
  END LOOP;
  RETURN true;
END;
$$;

COMMENT ON FUNCTION @schema@.queue_worker_idle(boolean) IS
  'Marks this session''s worker idle (shared advisory lock, so enqueue sends a NOTIFY) or busy; true when it just became idle and should claim once more.';

GRANT EXECUTE ON FUNCTION @schema@.queue_worker_idle(boolean) TO service_role;
