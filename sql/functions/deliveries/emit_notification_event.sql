-- emit_notification_event: records an event and fans it out, in one transaction, to the
-- users subscribed to its type: one delivery per channel each recipient receives and
-- one `send_notification` queue job per delivery.
--
-- * Recipients (notification_subscriptions, active rows of p_event_type): the target
--   user if subscribed; every active subscriber when there is no target (a broadcast);
--   a user with no subscription gets nothing, and the event is still recorded.
-- * Channels, per recipient: all four (email, sms, push, in_app) unless p_channels
--   restricts them; a channel whose preference row is disabled or opted out gets no
--   delivery; no preference row means enabled.
-- * One correlation id (p_correlation_id, else p_metadata->>'correlationId' as the seed
--   platform passes it, else a generated UUID) is stored on the event (and in its
--   metadata as correlationId), its deliveries, their jobs' metadata (correlation_id
--   and the platform's correlationId, with delivery_id) and the trace log.
-- * p_scheduled_for: the jobs are not due before it (NULL: now).
-- * Deliveries are one set-based INSERT; jobs go through add_queue_job (named
--   arguments) so the queue's dedup (key send_notification:<delivery id>) and worker
--   wake-up apply.
-- Bad input (empty or over-long event type or source, non-object or over-large payload
-- or metadata, unknown or empty channel list, empty correlation id, infinite
-- p_scheduled_for) raises 22023 before anything is written; any later error rolls back
-- the event, deliveries and jobs together.
CREATE FUNCTION @schema@.emit_notification_event(
  p_event_type text,
  p_payload jsonb,
  p_target_user_id uuid DEFAULT NULL,
  p_actor_user_id uuid DEFAULT NULL,
  p_channels text[] DEFAULT NULL,
  p_event_source text DEFAULT 'api',
  p_correlation_id text DEFAULT NULL,
  p_metadata jsonb DEFAULT NULL,
  p_scheduled_for timestamptz DEFAULT NULL
)
RETURNS uuid
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
DECLARE
  v_all_channels CONSTANT text[] := ARRAY['email', 'sms', 'push', 'in_app'];
  v_correlation_id text;
  v_event_id uuid;
  v_jobs integer;
BEGIN
  IF nullif(btrim(p_event_type), '') IS NULL OR length(p_event_type) > 200 THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_event_type: must be a non-empty name of at most 200 characters';
  END IF;
  PERFORM check_jsonb('p_payload', p_payload, 65536, true);
  IF p_channels IS NOT NULL
     AND (cardinality(p_channels) = 0 OR NOT p_channels <@ v_all_channels) THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('p_channels: %L must list channels among email, sms, push, in_app '
                       '(NULL means all)', left(p_channels::text, 100));
  END IF;
  IF nullif(btrim(p_event_source), '') IS NULL OR length(p_event_source) > 200 THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_event_source: must be a non-empty name of at most 200 characters';
  END IF;
  IF btrim(p_correlation_id) = '' OR length(p_correlation_id) > 200 THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_correlation_id: must be non-empty and at most 200 characters (NULL generates one)';
  END IF;
  PERFORM check_jsonb('p_metadata', p_metadata, 65536);
  IF length(p_metadata ->> 'correlationId') > 200 THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_metadata: correlationId must be at most 200 characters';
  END IF;
  IF NOT isfinite(p_scheduled_for) THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_scheduled_for: must be a finite time (NULL means now)';
  END IF;
  v_correlation_id := coalesce(p_correlation_id,
                               nullif(btrim(p_metadata ->> 'correlationId'), ''),
                               gen_random_uuid()::text);

  INSERT INTO notification_events
    (event_type, event_source, actor_user_id, target_user_id, payload, metadata,
     correlation_id)
  VALUES (p_event_type, p_event_source, p_actor_user_id, p_target_user_id, p_payload,
          coalesce(p_metadata, '{}') || jsonb_build_object('correlationId', v_correlation_id),
          v_correlation_id)
  RETURNING id INTO v_event_id;

  WITH deliveries AS (
    INSERT INTO notification_deliveries
      (event_id, recipient_user_id, channel, channel_identifier, payload, correlation_id)
    SELECT v_event_id, sub.user_id, c.channel, pref.phone_number, p_payload, v_correlation_id
    FROM notification_subscriptions sub
    CROSS JOIN unnest(v_all_channels) AS c (channel)
    LEFT JOIN notification_preferences pref
      ON pref.user_id = sub.user_id AND pref.channel = c.channel
    WHERE sub.event_type = p_event_type
      AND sub.is_active
      AND (p_target_user_id IS NULL OR sub.user_id = p_target_user_id)
      AND (p_channels IS NULL OR c.channel = ANY (p_channels))
      AND coalesce(pref.enabled, true)
      AND NOT coalesce(pref.opted_out, false)
    ORDER BY sub.user_id, c.channel
    RETURNING id, recipient_user_id, channel
  )
  SELECT count(add_queue_job(
           p_user_id => d.recipient_user_id,
           p_job_type => 'send_notification',
           p_metadata => jsonb_build_object(
             'delivery_id', d.id, 'event_id', v_event_id, 'event_type', p_event_type,
             'channel', d.channel, 'correlation_id', v_correlation_id,
             'correlationId', v_correlation_id),
           p_scheduled_for => coalesce(p_scheduled_for, now()),
           p_dedup_key => 'send_notification:' || d.id))
  INTO v_jobs
  FROM deliveries d;

  INSERT INTO notification_logs (level, message, metadata, correlation_id, event_id, source)
  VALUES ('info', 'event emitted',
          jsonb_build_object('event_type', p_event_type, 'target_user_id', p_target_user_id,
                             'deliveries', v_jobs),
          v_correlation_id, v_event_id, 'emit_notification_event');
  RETURN v_event_id;
END;
$$;

COMMENT ON FUNCTION @schema@.emit_notification_event(text, jsonb, uuid, uuid, text[], text, text, jsonb, timestamptz) IS 'Writes an event and, for each active subscriber of its type (the target only, when given), one delivery per enabled, not opted-out channel (p_channels restricts) and one send_notification job per delivery, not due before p_scheduled_for, all under one correlation id (p_correlation_id, else p_metadata.correlationId, else new), atomically; returns the event id. Raises 22023 naming the parameter on bad input.';

GRANT EXECUTE ON FUNCTION @schema@.emit_notification_event(text, jsonb, uuid, uuid, text[], text, text, jsonb, timestamptz) TO service_role;
