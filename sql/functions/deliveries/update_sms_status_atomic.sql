-- update_sms_status_atomic: applies one Twilio status callback to sms_messages and
-- the linked notification_deliveries row in one function call, so both change in
-- the caller's transaction or neither does (any error rolls back both, and the
-- callback log entry with them).
--
-- Why the result does not depend on arrival order:
-- * the SMS row is locked first (FOR NO KEY UPDATE, by id, else by twilio_sid through
--   its unique index), so concurrent callbacks for one message run one after another;
-- * twilio_status only moves up twilio_status_rank, and status / the delivery only up
--   delivery_status_rank (twilio_delivery_status is monotone, so both agree): the
--   final state is that of the highest-ranked status received; duplicates and lower
--   callbacks change no status;
-- * timestamps are set once; each callback fills the missing timestamps its stage
--   implies (read implies delivered implies sent), so the filled set is the union
--   over all callbacks received. The time is the callback's transaction time, and a
--   callback whose transaction started earlier but got the lock later may move a
--   timestamp earlier, never later: both tables keep the earliest report, and so
--   always hold the same value;
-- * an error (code, message) is stored on the SMS row and, with its code, in the
--   delivery's last_error, unless a higher-ranked callback already stored one;
--   Twilio error 21610 (the recipient replied STOP) opts the user out of SMS.
-- * the Twilio status is authoritative for both tables: p_mapped_status is only
--   checked to be a status name (the delivery vocabulary, the seed platform's SMS
--   vocabulary pending queued sending sent delivered failed undelivered scheduled
--   cancelled, or a Twilio status, which the platform's webhook passes through for
--   `read`), never applied. The platform maps canceled -> cancelled and accepted ->
--   queued; honouring its word would let two vocabularies disagree about one message.
-- Unknown message: one row with updated_sms = false, no error. Bad input (no id and no
-- sid, unknown or inbound status, a p_mapped_status that is no status name, a SID
-- contradicting the message's or held by another message, text beyond its bound)
-- raises 22023 before anything is written. Every accepted callback is appended to provider_callbacks with
-- whether it changed anything.
CREATE FUNCTION @schema@.update_sms_status_atomic(
  p_message_id uuid,
  p_twilio_sid text,
  p_twilio_status text,
  p_mapped_status text DEFAULT NULL,
  p_error_code integer DEFAULT NULL,
  p_error_message text DEFAULT NULL
)
RETURNS TABLE (
  notification_delivery_id uuid,
  user_id uuid,
  sent_at timestamptz,
  delivered_at timestamptz,
  attempt_count integer,
  max_attempts integer,
  priority text,
  updated_sms boolean,
  updated_delivery boolean
)
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
DECLARE
  v_twilio_status text := lower(btrim(p_twilio_status));
  v_sid text := nullif(btrim(p_twilio_sid), '');
  v_rank integer;
  v_mapped text;
  v_stages text[];
  v_has_error boolean := p_error_code IS NOT NULL OR p_error_message IS NOT NULL;
  v_old sms_messages;
  v_new sms_messages;
  v_delivery_error text;
  v_correlation_id text;
BEGIN
  v_rank := twilio_status_rank(v_twilio_status);
  v_mapped := twilio_delivery_status(v_twilio_status);
  v_stages := delivery_status_stages(v_mapped);
  IF p_message_id IS NULL AND v_sid IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_message_id: p_message_id or p_twilio_sid is required';
  END IF;
  IF length(v_sid) > 64 THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'p_twilio_sid: longer than 64 characters (Twilio SIDs have 34)';
  END IF;
  IF v_rank IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('p_twilio_status: %L is not a Twilio outbound message status '
                       '(inbound receiving/received are not delivery callbacks)',
                       left(p_twilio_status, 100));
  END IF;
  PERFORM check_text('p_mapped_status', p_mapped_status, 32, false);
  IF p_mapped_status IS NOT NULL
     AND NOT lower(btrim(p_mapped_status)) = ANY (ARRAY[
       -- delivery vocabulary
       'pending', 'sent', 'cancelled', 'failed', 'delivered', 'bounced', 'opened', 'clicked',
       -- the seed platform's SMS vocabulary (beyond the words above)
       'queued', 'sending', 'undelivered', 'scheduled',
       -- Twilio's own words (beyond the words above)
       'accepted', 'canceled', 'read']) THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('p_mapped_status: %L is no SMS, delivery or Twilio status name '
                       '(it is informational: p_twilio_status decides)', p_mapped_status);
  END IF;
  PERFORM check_text('p_error_message', p_error_message, 2000, false);

  SELECT * INTO v_old FROM sms_messages s WHERE s.id = p_message_id FOR NO KEY UPDATE;
  IF NOT FOUND AND v_sid IS NOT NULL THEN
    SELECT * INTO v_old FROM sms_messages s WHERE s.twilio_sid = v_sid
    FOR NO KEY UPDATE;
  END IF;

  IF v_old.twilio_sid <> v_sid THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('p_twilio_sid: %s, but message %s has SID %s',
                       v_sid, v_old.id, v_old.twilio_sid);
  END IF;
  IF v_old.id IS NOT NULL AND v_old.twilio_sid IS NULL AND v_sid IS NOT NULL
     AND EXISTS (SELECT FROM sms_messages s WHERE s.twilio_sid = v_sid) THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('p_twilio_sid: %s belongs to another message than %s', v_sid, v_old.id);
  END IF;

  IF v_old.id IS NULL THEN
    updated_sms := false;
    updated_delivery := false;
  ELSE
    v_new := v_old;
    v_new.twilio_sid := coalesce(v_old.twilio_sid, v_sid);
    IF v_rank > coalesce(twilio_status_rank(v_old.twilio_status), 0) THEN
      v_new.twilio_status := v_twilio_status;
    END IF;
    v_new.status := delivery_status_max(v_old.status, v_mapped);
    IF 'sent' = ANY (v_stages) THEN
      v_new.sent_at := least(v_old.sent_at, now());
    END IF;
    IF 'delivered' = ANY (v_stages) THEN
      v_new.delivered_at := least(v_old.delivered_at, now());
    END IF;
    IF 'failed' = ANY (v_stages) THEN
      v_new.failed_at := least(v_old.failed_at, now());
    END IF;
    IF v_has_error AND (
         (v_old.twilio_error_code IS NULL AND v_old.twilio_error_message IS NULL)
         OR v_rank >= coalesce(twilio_status_rank(v_old.twilio_status), 0)) THEN
      v_new.twilio_error_code := p_error_code;
      v_new.twilio_error_message := p_error_message;
    END IF;

    updated_sms := v_new IS DISTINCT FROM v_old;
    IF updated_sms THEN
      UPDATE sms_messages s
      SET twilio_sid = v_new.twilio_sid,
          twilio_status = v_new.twilio_status,
          status = v_new.status,
          sent_at = v_new.sent_at,
          delivered_at = v_new.delivered_at,
          failed_at = v_new.failed_at,
          twilio_error_code = v_new.twilio_error_code,
          twilio_error_message = v_new.twilio_error_message,
          updated_at = now()
      WHERE s.id = v_old.id;
    END IF;

    IF (v_new.twilio_error_code, v_new.twilio_error_message)
       IS DISTINCT FROM (v_old.twilio_error_code, v_old.twilio_error_message) THEN
      v_delivery_error := concat_ws(': ', 'Twilio error ' || v_new.twilio_error_code,
                                    v_new.twilio_error_message);
    END IF;
    IF v_old.notification_delivery_id IS NOT NULL THEN
      SELECT a.changed, a.correlation_id INTO updated_delivery, v_correlation_id
      FROM apply_delivery_status(v_old.notification_delivery_id, v_mapped, now(),
                                 v_delivery_error) AS a;
    END IF;
    updated_delivery := coalesce(updated_delivery, false);

    IF p_error_code = 21610 THEN
      PERFORM opt_out_user_channel(v_old.user_id, 'sms', 'twilio_21610_stop', v_old.phone_number);
    END IF;
  END IF;

  INSERT INTO provider_callbacks
    (provider, event, reference, sms_message_id, delivery_id, correlation_id, payload, changed)
  VALUES (
    'twilio', v_twilio_status, coalesce(v_sid, v_old.twilio_sid), v_old.id,
    v_old.notification_delivery_id, v_correlation_id,
    jsonb_strip_nulls(jsonb_build_object(
      'message_id', p_message_id, 'twilio_sid', p_twilio_sid, 'twilio_status', p_twilio_status,
      'mapped_status', p_mapped_status, 'error_code', p_error_code,
      'error_message', p_error_message)),
    updated_sms OR updated_delivery);

  notification_delivery_id := v_old.notification_delivery_id;
  user_id := v_old.user_id;
  sent_at := v_new.sent_at;
  delivered_at := v_new.delivered_at;
  attempt_count := v_old.attempt_count;
  max_attempts := v_old.max_attempts;
  priority := v_old.priority;
  RETURN NEXT;
END;
$$;

COMMENT ON FUNCTION @schema@.update_sms_status_atomic(uuid, text, text, text, integer, text) IS 'Applies a Twilio status callback to sms_messages and its delivery atomically, monotonically (highest-ranked status wins, whatever the order) and idempotently, and logs it; unknown message: one row with updated_sms = false. Raises 22023 on an unknown status, missing id and sid, or a p_mapped_status that is no status name (the Twilio status decides).';

GRANT EXECUTE ON FUNCTION @schema@.update_sms_status_atomic(uuid, text, text, text, integer, text) TO service_role;
