-- create_sms_link: the short code that redirects to p_url and counts clicks for a
-- delivery.
--
-- Codes come from generate_short_code (random, URL-safe). Uniqueness is the primary
-- key's job: the insert uses ON CONFLICT DO NOTHING and retries with a fresh code, so
-- a collision (or a concurrent creator) never raises. One link per (delivery, url):
-- asking again, e.g. from a retried send, returns the existing code.
-- Bad input (NULL or unknown delivery, empty or non-http(s) url) raises 22023 before
-- anything is written.
CREATE FUNCTION @schema@.create_sms_link(p_delivery_id uuid, p_url text)
RETURNS text
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
DECLARE
  v_code text;
BEGIN
  PERFORM check_required('p_delivery_id', p_delivery_id);
  PERFORM check_condition('p_url', p_url <> '', 'must not be NULL or empty');
  PERFORM check_text('p_url', p_url, 2048);
  PERFORM check_condition('p_url', is_http_url(p_url),
                          format('%L is not an http(s) URL', left(p_url, 100)));
  PERFORM check_condition('p_delivery_id',
    EXISTS (SELECT FROM notification_deliveries d WHERE d.id = p_delivery_id),
    format('no delivery %s', p_delivery_id));

  FOR attempt IN 1..10 LOOP
    SELECT l.short_code INTO v_code
    FROM sms_links l WHERE l.delivery_id = p_delivery_id AND l.url = p_url;
    IF FOUND THEN
      RETURN v_code;
    END IF;
    INSERT INTO sms_links (short_code, delivery_id, url)
    VALUES (generate_short_code(), p_delivery_id, p_url)
    ON CONFLICT DO NOTHING
    RETURNING short_code INTO v_code;
    IF FOUND THEN
      RETURN v_code;
    END IF;
  END LOOP;
  RAISE EXCEPTION 'create_sms_link: no free short code after 10 attempts';
END;
$$;

COMMENT ON FUNCTION @schema@.create_sms_link(uuid, text) IS 'Returns the unique random URL-safe short code linking to p_url for a delivery (the existing one for the same delivery and url; collisions retried). Raises 22023 on a NULL/unknown delivery or a URL that is empty or not http(s).';

GRANT EXECUTE ON FUNCTION @schema@.create_sms_link(uuid, text) TO service_role;
