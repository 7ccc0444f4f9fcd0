-- apply_delivery_status: the one place a reported status reaches a delivery row.
--
-- Used by every provider-update function (Twilio, email, link click) and open to the
-- worker, so every source follows the same rules:
-- * monotonic: the status becomes delivery_status_max(current, reported); a
--   duplicate or lower report changes no status;
-- * timestamps: the stages the reported status implies (delivery_status_stages) get
--   their timestamp if missing; an existing one only moves to an earlier reported
--   time (so opened_at is the first open, never later, and a click reported before
--   its open still leaves opened_at <= clicked_at);
-- * p_error replaces last_error; p_opens / p_clicks are added to the counters;
-- * the row is locked (FOR NO KEY UPDATE) before it is read, so concurrent reports
--   for one delivery serialise instead of overwriting each other, while inserts of
--   rows referencing it (sms_messages, sms_links: their foreign-key checks take KEY
--   SHARE) are not blocked; it is written only when something changed (duplicates
--   leave no dead tuple).
-- Callers that also touch sms_messages or sms_links lock those first (lock order:
-- sms_links / sms_messages, then notification_deliveries).
-- Returns one row (changed, correlation_id) or no row when the delivery does not exist.
CREATE FUNCTION @schema@.apply_delivery_status(
  p_delivery_id uuid,
  p_status text,
  p_occurred_at timestamptz DEFAULT now(),
  p_error text DEFAULT NULL,
  p_opens integer DEFAULT 0,
  p_clicks integer DEFAULT 0
)
RETURNS TABLE (changed boolean, correlation_id text)
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
DECLARE
  v_stages text[] := delivery_status_stages(p_status);
  v_old notification_deliveries;
  v_new notification_deliveries;
BEGIN
  PERFORM check_required('p_delivery_id', p_delivery_id);
  PERFORM check_condition('p_status', delivery_status_rank(p_status) IS NOT NULL,
                          format('unknown delivery status %L', left(p_status, 100)));
  PERFORM check_time('p_occurred_at', p_occurred_at);
  PERFORM check_text('p_error', p_error, 4096, false);  -- docs/bounds.md
  PERFORM check_condition('p_opens', p_opens BETWEEN 0 AND 1000, 'must be between 0 and 1000');
  PERFORM check_condition('p_clicks', p_clicks BETWEEN 0 AND 1000, 'must be between 0 and 1000');

  SELECT * INTO v_old FROM notification_deliveries d WHERE d.id = p_delivery_id
  FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RETURN;
  END IF;

  v_new := v_old;
  v_new.status := delivery_status_max(v_old.status, p_status);
  IF 'sent' = ANY (v_stages) THEN
    v_new.sent_at := least(v_old.sent_at, p_occurred_at);
  END IF;
  IF 'delivered' = ANY (v_stages) THEN
    v_new.delivered_at := least(v_old.delivered_at, p_occurred_at);
  END IF;
  IF 'opened' = ANY (v_stages) THEN
    v_new.opened_at := least(v_old.opened_at, p_occurred_at);
  END IF;
  IF 'clicked' = ANY (v_stages) THEN
    v_new.clicked_at := least(v_old.clicked_at, p_occurred_at);
  END IF;
  IF 'failed' = ANY (v_stages) THEN
    v_new.failed_at := least(v_old.failed_at, p_occurred_at);
  END IF;
  v_new.last_error := coalesce(p_error, v_old.last_error);
  v_new.open_count := v_old.open_count + p_opens;
  v_new.click_count := v_old.click_count + p_clicks;

  changed := v_new IS DISTINCT FROM v_old;
  correlation_id := v_old.correlation_id;
  IF changed THEN
    UPDATE notification_deliveries d
    SET status = v_new.status,
        sent_at = v_new.sent_at,
        delivered_at = v_new.delivered_at,
        opened_at = v_new.opened_at,
        clicked_at = v_new.clicked_at,
        failed_at = v_new.failed_at,
        last_error = v_new.last_error,
        open_count = v_new.open_count,
        click_count = v_new.click_count,
        updated_at = now()
    WHERE d.id = p_delivery_id;
  END IF;
  RETURN NEXT;
END;
$$;

COMMENT ON FUNCTION @schema@.apply_delivery_status(uuid, text, timestamptz, text, integer, integer) IS 'Moves a delivery up the delivery ranking (never down), fills the timestamps the status implies and adds open/click counts, under a row lock; returns (changed, correlation_id), no row for an unknown delivery. Raises 22023 on an unknown status, a NULL argument or an error text over 4096 characters.';

GRANT EXECUTE ON FUNCTION @schema@.apply_delivery_status(uuid, text, timestamptz, text, integer, integer) TO service_role;
