-- record_sms_link_click: counts a click on an SMS short link, syncs it into the
-- delivery, logs it, and returns the URL to redirect to.
--
-- The link row is updated in place (click_count + 1, first/last click times), which
-- locks it, so concurrent clicks are all counted. The delivery goes through
-- apply_delivery_status with status `clicked`: first click time kept, a click also
-- sets opened_at (and delivered_at, sent_at) when missing, click_count + 1, and the
-- status never moves down. Unknown short code: NULL (logged as changing nothing), no
-- error. A NULL code or a NULL or infinite time raises 22023 before anything is
-- written.
CREATE FUNCTION @schema@.record_sms_link_click(
  p_short_code text,
  p_occurred_at timestamptz DEFAULT now()
)
RETURNS text
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
DECLARE
  v_delivery_id uuid;
  v_url text;
  v_correlation_id text;
BEGIN
  PERFORM check_text('p_short_code', p_short_code, 32);  -- docs/bounds.md
  PERFORM check_time('p_occurred_at', p_occurred_at);

  UPDATE sms_links l
  SET click_count = l.click_count + 1,
      first_clicked_at = least(l.first_clicked_at, p_occurred_at),
      last_clicked_at = greatest(l.last_clicked_at, p_occurred_at)
  WHERE l.short_code = p_short_code
  RETURNING l.delivery_id, l.url INTO v_delivery_id, v_url;

  IF FOUND THEN
    SELECT a.correlation_id INTO v_correlation_id
    FROM apply_delivery_status(v_delivery_id, 'clicked', p_occurred_at, p_clicks => 1) AS a;
  END IF;

  INSERT INTO provider_callbacks
    (provider, event, reference, occurred_at, delivery_id, correlation_id, payload, changed)
  VALUES (
    'sms_link', 'click', p_short_code, p_occurred_at, v_delivery_id, v_correlation_id,
    jsonb_build_object('short_code', p_short_code, 'occurred_at', p_occurred_at),
    v_url IS NOT NULL);
  RETURN v_url;
END;
$$;

COMMENT ON FUNCTION @schema@.record_sms_link_click(text, timestamptz) IS 'Counts a click on an SMS short link, marks its delivery clicked (and opened) without ever moving it down, logs it, and returns the target URL; NULL for an unknown code. Raises 22023 on a NULL or over-long (32) code or a NULL or infinite time.';

GRANT EXECUTE ON FUNCTION @schema@.record_sms_link_click(text, timestamptz) TO service_role;
