-- delivery_status_max: the status a delivery holds after a report, i.e. the higher
-- of its current status and the reported one in delivery_status_rank.
--
-- This is the "only moves up" rule in one place: taking the maximum is commutative
-- and idempotent, so duplicates and any arrival order give the same final status.
-- An unknown reported status never wins (it has no rank).
CREATE FUNCTION @schema@.delivery_status_max(p_current text, p_reported text)
RETURNS text
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
  SELECT CASE
    WHEN delivery_status_rank(p_reported) > coalesce(delivery_status_rank(p_current), 0)
      THEN p_reported
    ELSE p_current
  END
$$;

COMMENT ON FUNCTION @schema@.delivery_status_max(text, text) IS 'The higher-ranked of two delivery statuses (the current one when the reported one is unknown or not higher). Never raises.';

GRANT EXECUTE ON FUNCTION @schema@.delivery_status_max(text, text) TO service_role;
