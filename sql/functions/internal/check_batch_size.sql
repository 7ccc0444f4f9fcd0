-- check_batch_size: the one rule for batch sizes (1..1000), raised as 22023.
--
-- Shared by every function taking a batch size or a batch of ids, so the limit and the
-- message are the same everywhere. Raises before the caller has written anything.
CREATE FUNCTION @schema@.check_batch_size(p_parameter text, p_size integer, p_max integer DEFAULT 1000)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  IF p_size IS NULL OR p_size < 1 OR p_size > p_max THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('%s: must be between 1 and %s, got %s', coalesce(p_parameter, 'p_parameter'),
                       p_max, coalesce(p_size::text, 'NULL'));
  END IF;
END;
$$;

COMMENT ON FUNCTION @schema@.check_batch_size(text, integer, integer) IS
  'Raises 22023 naming p_parameter unless 1 <= p_size <= p_max.';

GRANT EXECUTE ON FUNCTION @schema@.check_batch_size(text, integer, integer) TO service_role;
GRANT EXECUTE ON FUNCTION @schema@.check_batch_size(text, integer, integer) TO notify_sql_monitor;
