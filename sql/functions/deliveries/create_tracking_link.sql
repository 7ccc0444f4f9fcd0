-- create_tracking_link: the short code that redirects to p_destination_url and counts
-- clicks for a delivery (the seed platform's name and arguments).
--
-- The same links as create_sms_link (table sms_links, resolved and counted by
-- record_sms_link_click, so a click lifts the delivery to `clicked` through the one
-- status model): random URL-safe codes, collisions retried, one link per (delivery,
-- url), so asking again returns the existing code. Bad input (NULL or unknown delivery,
-- empty, over 2048 characters or non-http(s) URL) raises 22023 naming p_delivery_id or
-- p_destination_url before anything is written.
CREATE FUNCTION @schema@.create_tracking_link(p_delivery_id uuid, p_destination_url text)
RETURNS text
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  PERFORM check_text('p_destination_url', nullif(p_destination_url, ''), 2048);
  IF NOT is_http_url(p_destination_url) THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('p_destination_url: %L is not an http(s) URL',
                       left(p_destination_url, 100));
  END IF;
  RETURN create_sms_link(p_delivery_id => p_delivery_id, p_url => p_destination_url);
END;
$$;

COMMENT ON FUNCTION @schema@.create_tracking_link(uuid, text) IS 'Returns the unique random short code linking to p_destination_url for a delivery (the existing one for the same delivery and url), shared with create_sms_link and record_sms_link_click. Raises 22023 naming p_delivery_id or p_destination_url when invalid.';

GRANT EXECUTE ON FUNCTION @schema@.create_tracking_link(uuid, text) TO service_role;
