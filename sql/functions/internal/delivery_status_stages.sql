-- delivery_status_stages: which timestamps reaching a delivery status implies.
--
-- Reaching a stage fills the missing timestamps of every stage it implies (clicked
-- implies opened implies delivered implies sent; a bounce implies the mail was sent
-- and then failed). The names are the timestamp columns without "_at". Because each
-- report fills the stages of its own status, the set of filled timestamps is the
-- union over all reports received, whatever their order.
CREATE FUNCTION @schema@.delivery_status_stages(p_status text)
RETURNS text[]
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
  SELECT CASE p_status
    WHEN 'sent' THEN ARRAY['sent']
    WHEN 'delivered' THEN ARRAY['sent', 'delivered']
    WHEN 'opened' THEN ARRAY['sent', 'delivered', 'opened']
    WHEN 'clicked' THEN ARRAY['sent', 'delivered', 'opened', 'clicked']
    WHEN 'failed' THEN ARRAY['failed']
    WHEN 'bounced' THEN ARRAY['sent', 'failed']
    ELSE ARRAY[]::text[]
  END
$$;

COMMENT ON FUNCTION @schema@.delivery_status_stages(text) IS 'The stages (sent, delivered, opened, clicked, failed) whose timestamps a delivery status implies; empty for pending, cancelled or an unknown status. Never raises.';

GRANT EXECUTE ON FUNCTION @schema@.delivery_status_stages(text) TO service_role;
