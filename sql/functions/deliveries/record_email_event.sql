-- record_email_event: applies one email provider event (delivered, open, click,
-- bounce, complaint) to the delivery that owns the tracking id, and logs it.
--
-- Event -> delivery status: delivered -> delivered, open -> opened, click -> clicked,
-- bounce -> bounced, complaint -> delivered (the mail arrived; the complaint also opts
-- the user out of email). apply_delivery_status moves the status only up the single
-- ranking, under a row lock, so:
-- * opened_at / clicked_at keep the first (earliest) report; repeats only count
--   (open_count, click_count);
-- * a click on an unopened delivery also sets opened_at (and delivered_at, sent_at);
-- * a bounce after `delivered` is applied (bounced ranks above delivered), but not
--   after an open or click (they rank above bounced).
-- Unknown tracking id: returns false (still logged, as changing nothing), no error.
-- Bad input (NULL or empty tracking id, unknown event, NULL or infinite time, a p_url
-- that is not http(s)) raises 22023 before anything is written.
CREATE FUNCTION @schema@.record_email_event(
  p_tracking_id text,
  p_event text,
  p_occurred_at timestamptz DEFAULT now(),
  p_url text DEFAULT NULL
)
RETURNS boolean
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
DECLARE
  v_event text := lower(btrim(p_event));
  v_status text;
  v_delivery notification_deliveries;
  v_changed boolean := false;
  v_correlation_id text;
BEGIN
  IF nullif(btrim(p_tracking_id), '') IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'p_tracking_id: must not be NULL or empty';
  END IF;
  v_status := CASE v_event
    WHEN 'delivered' THEN 'delivered'
    WHEN 'open' THEN 'opened'
    WHEN 'click' THEN 'clicked'
    WHEN 'bounce' THEN 'bounced'
    WHEN 'complaint' THEN 'delivered'
  END;
  IF v_status IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('p_event: %L is not one of delivered, open, click, bounce, complaint',
                       left(p_event, 100));
  END IF;
  IF p_occurred_at IS NULL OR NOT isfinite(p_occurred_at) THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'p_occurred_at: must be a finite timestamp';
  END IF;
  IF p_url IS NOT NULL AND (length(p_url) > 2048 OR NOT is_http_url(p_url)) THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('p_url: %L is not an http(s) URL of at most 2048 characters',
                       left(p_url, 100));
  END IF;

  SELECT * INTO v_delivery FROM notification_deliveries d WHERE d.tracking_id = p_tracking_id;
  IF FOUND THEN
    SELECT a.changed, a.correlation_id INTO v_changed, v_correlation_id
    FROM apply_delivery_status(
      v_delivery.id, v_status, p_occurred_at,
      CASE v_event
        WHEN 'bounce' THEN 'email bounced'
        WHEN 'complaint' THEN 'email complaint (marked as spam)'
      END,
      p_opens => (v_event = 'open')::integer,
      p_clicks => (v_event = 'click')::integer) AS a;
    IF v_event = 'complaint' THEN
      v_changed := opt_out_user_channel(v_delivery.recipient_user_id, 'email',
                                        'email_complaint') OR v_changed;
    END IF;
  END IF;

  INSERT INTO provider_callbacks
    (provider, event, reference, occurred_at, delivery_id, correlation_id, payload, changed)
  VALUES (
    'email', v_event, p_tracking_id, p_occurred_at, v_delivery.id, v_correlation_id,
    jsonb_strip_nulls(jsonb_build_object(
      'tracking_id', p_tracking_id, 'event', p_event, 'occurred_at', p_occurred_at,
      'url', p_url)),
    v_changed);
  RETURN v_delivery.id IS NOT NULL;
END;
$$;

COMMENT ON FUNCTION @schema@.record_email_event(text, text, timestamptz, text) IS 'Applies an email event (delivered, open, click, bounce, complaint) to the delivery with that tracking id, monotonically, keeping first open/click times and counting repeats, and logs it; false for an unknown tracking id. Raises 22023 on an unknown event, NULL/empty tracking id or non-http(s) URL.';

GRANT EXECUTE ON FUNCTION @schema@.record_email_event(text, text, timestamptz, text) TO service_role;
