-- get_queue_throughput: jobs finished per minute, for the console's throughput chart.
--
-- One row per minute of the last p_interval (at most a day, so at most 1,440 rows),
-- zeros included, oldest first: jobs completed and jobs failed for good in that minute.
-- Reads a range of queue_jobs_completed_at_idx (0009): the cost follows the jobs
-- finished in the window, whatever the table holds.
CREATE FUNCTION @schema@.get_queue_throughput(p_interval interval DEFAULT '1 hour')
RETURNS TABLE (bucket_start timestamptz, completed bigint, failed bigint)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
BEGIN
  PERFORM check_interval('p_interval', p_interval);
  IF p_interval > interval '1 day' THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('p_interval: at most 1 day, got %s', p_interval);
  END IF;
  RETURN QUERY
  WITH finished AS (
    SELECT date_trunc('minute', j.completed_at) AS minute,
           count(*) FILTER (WHERE j.status = 'completed') AS completed,
           count(*) FILTER (WHERE j.status = 'failed') AS failed
    FROM queue_jobs j
    WHERE j.completed_at IS NOT NULL AND j.completed_at > now() - p_interval
    GROUP BY 1
  )
  SELECT m.minute, coalesce(f.completed, 0), coalesce(f.failed, 0)
  FROM generate_series(date_trunc('minute', now() - p_interval) + interval '1 minute',
                       date_trunc('minute', now()), interval '1 minute') AS m(minute)
  LEFT JOIN finished f ON f.minute = m.minute
  ORDER BY m.minute;
END;
$$;

COMMENT ON FUNCTION @schema@.get_queue_throughput(interval) IS
  'Jobs completed and failed for good per minute over the last p_interval (at most 1 day), zeros included, oldest first. 22023 on an interval outside (0, 1 day].';

GRANT EXECUTE ON FUNCTION @schema@.get_queue_throughput(interval) TO service_role;
GRANT EXECUTE ON FUNCTION @schema@.get_queue_throughput(interval) TO notify_sql_monitor;
