-- twilio_delivery_status: the delivery status a Twilio message status maps to.
--
-- The mapping is monotone (a higher Twilio rank never maps to a lower delivery
-- rank), so "keep the highest Twilio status" and "keep the highest delivery status"
-- agree: sms_messages and notification_deliveries end in the same state whatever
-- the order of callbacks. NULL for an unknown or inbound status.
CREATE FUNCTION @schema@.twilio_delivery_status(p_twilio_status text)
RETURNS text
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
  SELECT CASE p_twilio_status
    WHEN 'accepted' THEN 'pending'
    WHEN 'scheduled' THEN 'pending'
    WHEN 'queued' THEN 'pending'
    WHEN 'sending' THEN 'pending'
    WHEN 'sent' THEN 'sent'
    WHEN 'canceled' THEN 'cancelled'
    WHEN 'failed' THEN 'failed'
    WHEN 'undelivered' THEN 'failed'
    WHEN 'delivered' THEN 'delivered'
    WHEN 'read' THEN 'opened'
  END
$$;

COMMENT ON FUNCTION @schema@.twilio_delivery_status(text) IS 'Delivery status for a Twilio outbound message status (read -> opened, undelivered -> failed, ...); NULL for an unknown or inbound status. Never raises.';

GRANT EXECUTE ON FUNCTION @schema@.twilio_delivery_status(text) TO service_role;
