-- twilio_status_rank: the order of Twilio's outbound MessageStatus values, defined once.
--
-- accepted < scheduled < queued < sending < sent < canceled < failed < undelivered
-- < delivered < read (CONTRACT.md). Twilio sends callbacks late, twice and out of
-- order; an SMS keeps the highest-ranked status received, so this order decides the
-- final state. Inbound statuses (receiving, received) are not delivery callbacks and
-- have no rank: NULL, like any unknown word.
CREATE FUNCTION @schema@.twilio_status_rank(p_twilio_status text)
RETURNS integer
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
  SELECT array_position(
    ARRAY['accepted', 'scheduled', 'queued', 'sending', 'sent', 'canceled', 'failed',
          'undelivered', 'delivered', 'read'],
    p_twilio_status)
$$;

COMMENT ON FUNCTION @schema@.twilio_status_rank(text) IS 'Rank (1 = accepted .. 10 = read) of a Twilio outbound message status; NULL for an unknown or inbound status. Never raises.';

GRANT EXECUTE ON FUNCTION @schema@.twilio_status_rank(text) TO service_role;
