-- queue_wake_workers: tells idle workers that jobs of these types are due.
--
-- The channel is '<schema>.queue_jobs' (here '@schema@.queue_jobs') and the payload is
-- the job type, so a worker can ignore types it does not handle. NOTIFY is only a
-- latency hint: workers must still poll, since LISTEN does not survive a
-- transaction-mode pooler. pg_notify takes a cluster-wide lock at commit; a deployment
-- that polls anyway can turn it off with `SET notify_sql.enqueue_notify = off` (per
-- session, role or database). One notification per distinct type per call.
CREATE FUNCTION @schema@.queue_wake_workers(p_job_types text[])
RETURNS void
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  IF coalesce(current_setting('notify_sql.enqueue_notify', true), '') <> 'off' THEN
    PERFORM pg_notify('@schema@.queue_jobs', t) FROM (SELECT DISTINCT unnest(p_job_types) AS t) s;
  END IF;
END;
$$;

COMMENT ON FUNCTION @schema@.queue_wake_workers(text[]) IS
  'Sends one NOTIFY on channel ''@schema@.queue_jobs'' per distinct job type (payload = type), unless notify_sql.enqueue_notify is off.';

GRANT EXECUTE ON FUNCTION @schema@.queue_wake_workers(text[]) TO service_role;
