-- queue_sms_message: records an SMS message and its `send_sms` queue job in one
-- transaction (the seed platform's name and arguments); returns the message id.
--
-- * The message row (status pending, due at p_scheduled_for or now) and its job (due at
--   the same time, metadata naming message_id, phone_number, message, user_id,
--   priority, plus the caller's metadata) are written by one call: both or neither.
--   The job goes through add_queue_job with NAMED arguments, so the queue's own rules
--   (dedup key send_sms:<message id>, wake-up) apply and new queue parameters with
--   defaults never matter here.
-- * Dedup: p_metadata's `dedup_key`, else its `notification_delivery_id` (the platform's
--   notification worker passes one per delivery), names the message: a second call with
--   the same key returns the first message and writes nothing, even when both run at
--   once (unique index + INSERT ... ON CONFLICT DO NOTHING, then a read of the winner,
--   which READ COMMITTED sees once it committed).
-- * Priority (low, normal, high, urgent) also orders the job: urgent 1, high 5, else 10.
-- Bad input (NULL user, empty or over-long phone number or message, unknown priority,
-- non-object or over-large metadata, infinite time) raises 22023 before anything is
-- written.
CREATE FUNCTION @schema@.queue_sms_message(
  p_user_id uuid,
  p_phone_number text,
  p_message text,
  p_scheduled_for timestamptz DEFAULT NULL,
  p_priority text DEFAULT 'normal',
  p_metadata jsonb DEFAULT NULL
)
RETURNS uuid
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
DECLARE
  v_due timestamptz := coalesce(p_scheduled_for, now());
  v_key text := coalesce(p_metadata ->> 'dedup_key', p_metadata ->> 'notification_delivery_id');
  v_message_id uuid;
  v_job_id uuid;
BEGIN
  PERFORM check_required('p_user_id', p_user_id);
  PERFORM check_text('p_phone_number', nullif(btrim(p_phone_number), ''), 32);
  PERFORM check_text('p_message', nullif(p_message, ''), 1600);
  PERFORM check_choice('p_priority', p_priority, ARRAY['low', 'normal', 'high', 'urgent']);
  PERFORM check_jsonb('p_metadata', p_metadata, 16384);
  IF length(v_key) > 200 OR v_key = '' THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_metadata: dedup_key / notification_delivery_id must have 1 to 200 characters';
  END IF;
  IF NOT isfinite(v_due) THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_scheduled_for: must be a finite time (NULL means now)';
  END IF;

  INSERT INTO sms_messages
    (user_id, phone_number, message_content, priority, metadata, scheduled_for, dedup_key)
  VALUES (p_user_id, btrim(p_phone_number), p_message, p_priority,
          coalesce(p_metadata, '{}'), v_due, v_key)
  ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
  RETURNING id INTO v_message_id;
  IF v_message_id IS NULL THEN
    SELECT s.id INTO STRICT v_message_id FROM sms_messages s WHERE s.dedup_key = v_key;
    RETURN v_message_id;
  END IF;

  v_job_id := add_queue_job(
    p_user_id => p_user_id,
    p_job_type => 'send_sms',
    p_metadata => coalesce(p_metadata, '{}') || jsonb_build_object(
      'message_id', v_message_id, 'phone_number', btrim(p_phone_number),
      'message', p_message, 'user_id', p_user_id, 'priority', p_priority),
    p_priority => CASE p_priority WHEN 'urgent' THEN 1 WHEN 'high' THEN 5 ELSE 10 END,
    p_scheduled_for => v_due,
    p_dedup_key => 'send_sms:' || v_message_id);
  UPDATE sms_messages s SET queue_job_id = v_job_id WHERE s.id = v_message_id;
  RETURN v_message_id;
END;
$$;

COMMENT ON FUNCTION @schema@.queue_sms_message(uuid, text, text, timestamptz, text, jsonb) IS 'Writes an SMS message and its send_sms job (due at p_scheduled_for, default now) atomically; returns the message id. p_metadata.dedup_key (else notification_delivery_id) makes it idempotent, also under concurrency. Raises 22023 naming the parameter on bad input.';

GRANT EXECUTE ON FUNCTION @schema@.queue_sms_message(uuid, text, text, timestamptz, text, jsonb) TO service_role;
