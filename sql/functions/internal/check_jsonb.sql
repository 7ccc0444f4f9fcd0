-- check_jsonb: the one rule for jsonb arguments: shape (object or any) and size bound.
--
-- The size is the value's stored size in bytes (pg_column_size: no re-serialisation,
-- so checking a large document costs no more than reading its header). NULL passes
-- when p_required is false. Parameter name first, like every check_*.
CREATE FUNCTION @schema@.check_jsonb(p_parameter text, p_value jsonb, p_max_bytes integer,
                                      p_required boolean DEFAULT false,
                                      p_object boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  IF p_value IS NULL THEN
    IF p_required THEN
      RAISE EXCEPTION USING ERRCODE = '22023',
        MESSAGE = format('%s: must not be NULL', coalesce(p_parameter, 'p_parameter'));
    END IF;
  ELSIF p_object AND jsonb_typeof(p_value) <> 'object' THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('%s: must be a JSON object, got %s', coalesce(p_parameter, 'p_parameter'),
                       jsonb_typeof(p_value));
  ELSIF pg_column_size(p_value) > p_max_bytes THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('%s: at most %s bytes, got %s', coalesce(p_parameter, 'p_parameter'),
                       p_max_bytes, pg_column_size(p_value));
  END IF;
END;
$$;

COMMENT ON FUNCTION @schema@.check_jsonb(text, jsonb, integer, boolean, boolean) IS
  'Raises 22023 naming p_parameter when p_value is NULL (and required), not an object (when p_object), or over p_max_bytes.';

GRANT EXECUTE ON FUNCTION @schema@.check_jsonb(text, jsonb, integer, boolean, boolean) TO service_role;
