-- queue_wake_workers: tells idle workers that jobs of these types are due.
--
-- The channel is '<schema>.queue_jobs' (here '@schema@.queue_jobs') and the payload is
-- the job type, so a worker can ignore types it does not handle. NOTIFY is only a
-- latency hint: workers must still poll, since LISTEN does not survive a
-- transaction-mode pooler.
--
-- Only when a worker is idle. A committing NOTIFY takes a cluster-wide lock, so a busy
-- queue (every worker claiming full batches) should not pay it on every enqueue. A
-- worker is idle from a claim that did not fill its batch until a claim that does
-- (queue_worker_idle, called by claim_pending_jobs): during that time its session
-- holds a shared session-level advisory lock ("idle" key). Here a momentary try of the
-- exclusive lock on that key tells whether anyone holds it: no table is read or
-- written. Two enqueuers trying at the same instant may each see the other's try and
-- send a NOTIFY nobody needed; that is harmless.
--
-- No lost wake-up: this transaction holds the "gate" key in shared mode from before
-- that check until it commits. A worker that becomes idle first takes the idle lock,
-- then waits until it can take the gate exclusively (every enqueuer that may have
-- checked before it became idle has then committed), then claims once more. So a job
-- is either seen by that last claim or announced by a NOTIFY. (The worker waits for
-- the gate only briefly: behind a long transaction that enqueued, it gives up and that
-- job is found by the next poll.)
--
-- `SET notify_sql.enqueue_notify = off` (per session, role or database) sends nothing;
-- `= always` notifies on every enqueue, for workers that LISTEN without claiming.
CREATE FUNCTION @schema@.queue_wake_workers(p_job_types text[])
RETURNS void
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
DECLARE
  v_mode constant text := coalesce(current_setting('notify_sql.enqueue_notify', true), '');
  v_void text;  -- assignments, not PERFORM: simple expressions skip the executor
BEGIN
  IF v_mode = 'off' OR cardinality(p_job_types) = 0 THEN
    RETURN;
  END IF;
  IF v_mode <> 'always' THEN
    v_void := pg_advisory_xact_lock_shared(hashtextextended('@schema@.queue_jobs:gate', 0));
    IF pg_try_advisory_lock(hashtextextended('@schema@.queue_jobs:idle', 0)) THEN
      v_void := pg_advisory_unlock(hashtextextended('@schema@.queue_jobs:idle', 0));
      RETURN;  -- nobody idle
    END IF;
  END IF;
  PERFORM pg_notify('@schema@.queue_jobs', t) FROM (SELECT DISTINCT unnest(p_job_types) AS t) s;
END;
$$;

COMMENT ON FUNCTION @schema@.queue_wake_workers(text[]) IS
  'Sends one NOTIFY on channel ''@schema@.queue_jobs'' per distinct job type (payload = type) when a worker is idle (always with notify_sql.enqueue_notify = always, never with = off).';

GRANT EXECUTE ON FUNCTION @schema@.queue_wake_workers(text[]) TO service_role;
