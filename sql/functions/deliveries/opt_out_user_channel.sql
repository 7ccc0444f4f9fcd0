-- opt_out_user_channel: records that a user opted out of a channel (SMS STOP, email
-- spam complaint, unsubscribe link).
--
-- An upsert on the (user_id, channel) preference row, so it is safe under
-- concurrency and idempotent: the first opt-out time and reason are kept, a repeat
-- changes nothing. emit_notification_event creates no delivery on an opted-out
-- channel. Returns true when the user was not opted out before.
CREATE FUNCTION @schema@.opt_out_user_channel(
  p_user_id uuid,
  p_channel text,
  p_reason text,
  p_phone_number text DEFAULT NULL
)
RETURNS boolean
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  PERFORM check_required('p_user_id', p_user_id);
  PERFORM check_member('p_channel', p_channel, notification_channels());
  PERFORM check_text('p_reason', p_reason, 1024, false);  -- docs/bounds.md
  PERFORM check_text('p_phone_number', p_phone_number, 32, false);

  INSERT INTO notification_preferences AS p
    (user_id, channel, opted_out, opted_out_at, opt_out_reason, phone_number)
  VALUES (p_user_id, p_channel, true, now(), p_reason,
          CASE WHEN p_channel = 'sms' THEN nullif(btrim(p_phone_number), '') END)
  ON CONFLICT ON CONSTRAINT notification_preferences_pkey DO UPDATE
  SET opted_out = true,
      opted_out_at = coalesce(p.opted_out_at, now()),
      opt_out_reason = coalesce(p.opt_out_reason, EXCLUDED.opt_out_reason),
      updated_at = now()
  WHERE NOT p.opted_out;
  RETURN FOUND;
END;
$$;

COMMENT ON FUNCTION @schema@.opt_out_user_channel(uuid, text, text, text) IS 'Marks a user opted out of a channel (idempotent; first time and reason kept); true when this call opted them out. Raises 22023 on a NULL user, an unknown channel, a reason over 1024 or a phone number over 32 characters.';

GRANT EXECUTE ON FUNCTION @schema@.opt_out_user_channel(uuid, text, text, text) TO service_role;
