-- queue_worker_idle: records whether this session's worker is idle (for queue_wake_workers).
--
-- Called by claim_pending_jobs: p_idle = true after a claim that did not fill its batch
-- (the worker is about to wait), false after one that did. Idle means holding a shared
-- session-level advisory lock on the "idle" key; a session GUC remembers it, so the
-- busy path costs one current_setting() and nothing else. Session locks go with the
-- session, so a worker that dies stops counting as idle.
--
-- Becoming idle returns true when the caller must claim once more: the gate (see
-- queue_wake_workers) was taken exclusively, so every enqueuer that checked for idle
-- workers before this one registered has committed and its jobs are visible now. The
-- gate is only tried (never queued for, so enqueuers never wait on an idle worker),
-- for at most about 20 ms.
CREATE FUNCTION @schema@.queue_worker_idle(p_idle boolean)
RETURNS boolean
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
DECLARE
  v_was_idle constant boolean := coalesce(current_setting('notify_sql.idle_@schema@', true), '') = 'on';
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
  FOR i IN 1..40 LOOP
    IF pg_try_advisory_lock(hashtextextended('@schema@.queue_jobs:gate', 0)) THEN
      PERFORM pg_advisory_unlock(hashtextextended('@schema@.queue_jobs:gate', 0));
      EXIT;
    END IF;
    PERFORM pg_sleep(0.0005);
  END LOOP;
  RETURN true;
END;
$$;

COMMENT ON FUNCTION @schema@.queue_worker_idle(boolean) IS
  'Marks this session''s worker idle (shared advisory lock, so enqueue sends a NOTIFY) or busy; true when it just became idle and should claim once more.';

GRANT EXECUTE ON FUNCTION @schema@.queue_worker_idle(boolean) TO service_role;
