-- delivery_status_rank: THE order of the delivery state model, defined once.
--
-- pending < sent < cancelled < failed < delivered < bounced < opened < clicked
-- (CONTRACT.md). A delivery's status only ever moves up this ranking, whatever
-- reports it (worker, Twilio, email provider, link click), so the final state does
-- not depend on the order in which reports arrive. Every function that compares
-- delivery statuses calls this one (directly or through delivery_status_max); nothing
-- else spells the order out. NULL for a word outside the model.
CREATE FUNCTION @schema@.delivery_status_rank(p_status text)
RETURNS integer
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
  SELECT array_position(
    ARRAY['pending', 'sent', 'cancelled', 'failed', 'delivered', 'bounced', 'opened', 'clicked'],
    p_status)
$$;

COMMENT ON FUNCTION @schema@.delivery_status_rank(text) IS 'Rank (1 = pending .. 8 = clicked) of a delivery status in the single delivery ranking; NULL for an unknown status. Never raises.';

GRANT EXECUTE ON FUNCTION @schema@.delivery_status_rank(text) TO service_role;
