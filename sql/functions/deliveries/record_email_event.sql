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
-- Returns whether the event changed anything: the delivery (status, a timestamp, an
-- open / click counter, last_error) or, for a complaint, the recipient's email opt-out;
-- the same value provider_callbacks.changed records. A duplicate event, or `delivered`
-- after an open, returns false. A first bounce after an open returns true although the
-- status stays `opened`: it records failed_at and last_error, because every report
-- leaves its timestamps whatever the order (delivery_status_stages). Unknown tracking
-- id: returns false (still logged, as changing nothing), no error.
-- Bad input (NULL or empty tracking id, unknown event, NULL or infinite time, a p_url
-- that is not http(s), a text argument over its bound) raises 22023 before anything is
-- written. Bounds (docs/bounds.md): p_tracking_id 128 characters (ours are 32 hex
-- digits; room for an app's own ids, none longer can match), p_event 32 (the longest
-- event is 9), p_url 2048 (what browsers and email clients reliably carry).
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
  PERFORM check_text('p_tracking_id', p_tracking_id, 128);
  PERFORM check_text('p_event', p_event, 32);
  PERFORM check_text('p_url', p_url, 2048, p_required => false);
  IF btrim(p_tracking_id) = '' THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'p_tracking_id: must not be empty';
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
  IF p_url IS NOT NULL AND NOT is_http_url(p_url) THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('p_url: %L is not an http(s) URL', left(p_url, 100));
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
  v_changed := coalesce(v_changed, false);  -- no row: the delivery vanished meanwhile

  INSERT INTO provider_callbacks
    (provider, event, reference, occurred_at, delivery_id, correlation_id, payload, changed)
  VALUES (
    'email', v_event, p_tracking_id, p_occurred_at, v_delivery.id, v_correlation_id,
    jsonb_strip_nulls(jsonb_build_object(
      'tracking_id', p_tracking_id, 'event', p_event, 'occurred_at', p_occurred_at,
      'url', p_url)),
    v_changed);
  RETURN v_changed;
END;
$$;

COMMENT ON FUNCTION @schema@.record_email_event(text, text, timestamptz, text) IS 'Applies an email event (delivered, open, click, bounce, complaint) to the delivery with that tracking id, monotonically, keeping first open/click times and counting repeats, and logs it. Returns whether the event changed the delivery (status, timestamps, counters, last_error) or, for a complaint, the opt-out: false for a duplicate or an unknown tracking id. Raises 22023 on an unknown event, NULL/empty tracking id, non-http(s) URL, or text over its bound (tracking id 128, event 32, url 2048).';

GRANT EXECUTE ON FUNCTION @schema@.record_email_event(text, text, timestamptz, text) TO service_role;
