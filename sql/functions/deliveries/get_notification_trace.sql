-- get_notification_trace: everything that happened under one correlation id, in time
-- order: the event, its deliveries, their queue jobs, the provider callbacks and the
-- trace log entries.
--
-- Read-only. Events, deliveries, callbacks and logs are found through their
-- correlation_id indexes; queue jobs by metadata->>'correlationId', the key every
-- enqueued job carries: emit_notification_event writes the event's correlation id
-- there, a caller may give one, and add_queue_job(s) otherwise write the job's own id.
-- Jobs of the first two kinds are read through queue_jobs_correlation_id_idx, which
-- leaves out the third (0013: an entry per job cost every enqueue); a job traced
-- under its own id is read by its primary key.
CREATE FUNCTION @schema@.get_notification_trace(p_correlation_id text)
RETURNS TABLE (at timestamptz, kind text, id text, detail jsonb)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
DECLARE
  -- The id of a job traced under its own id (uuid text, as add_queue_job writes it).
  v_own_id constant uuid := CASE WHEN p_correlation_id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                                 THEN p_correlation_id::uuid END;
BEGIN
  PERFORM check_condition('p_correlation_id', btrim(p_correlation_id) <> '',
                          'must not be NULL or empty');
  PERFORM check_text('p_correlation_id', p_correlation_id, 200);  -- docs/bounds.md
  RETURN QUERY
  SELECT t.at, t.kind, t.id, t.detail
  FROM (
    SELECT e.created_at AS at, 'event' AS kind, e.id::text AS id,
           jsonb_build_object('event_type', e.event_type, 'event_source', e.event_source,
                              'target_user_id', e.target_user_id) AS detail
    FROM notification_events e WHERE e.correlation_id = p_correlation_id
    UNION ALL
    SELECT d.created_at, 'delivery', d.id::text,
           jsonb_build_object('channel', d.channel, 'status', d.status,
                              'event_id', d.event_id, 'last_error', d.last_error)
    FROM notification_deliveries d WHERE d.correlation_id = p_correlation_id
    UNION ALL
    SELECT j.created_at, 'job', j.id::text,
           jsonb_build_object('job_type', j.job_type, 'status', j.status,
                              'delivery_id', j.metadata ->> 'delivery_id',
                              'attempts', j.attempts, 'error_message', j.error_message)
    FROM queue_jobs j
    WHERE j.metadata ->> 'correlationId' = p_correlation_id
      AND ((j.metadata ->> 'correlationId') <> j.id::text OR j.id = v_own_id)
    UNION ALL
    SELECT c.received_at, 'callback', c.id::text,
           jsonb_build_object('provider', c.provider, 'event', c.event,
                              'reference', c.reference, 'delivery_id', c.delivery_id,
                              'changed', c.changed)
    FROM provider_callbacks c WHERE c.correlation_id = p_correlation_id
    UNION ALL
    SELECT l.created_at, 'log', l.id::text,
           jsonb_build_object('level', l.level, 'message', l.message,
                              'metadata', l.metadata, 'delivery_id', l.delivery_id)
    FROM notification_logs l WHERE l.correlation_id = p_correlation_id
  ) AS t
  ORDER BY t.at, t.kind, t.id;
END;
$$;

COMMENT ON FUNCTION @schema@.get_notification_trace(text) IS 'Everything recorded under one correlation id (event, deliveries, queue jobs, provider callbacks, logs) in time order. Read-only; raises 22023 on a NULL, empty or over-long (200) id.';

GRANT EXECUTE ON FUNCTION @schema@.get_notification_trace(text) TO service_role;
GRANT EXECUTE ON FUNCTION @schema@.get_notification_trace(text) TO notify_sql_monitor;
