-- next_limited_start: when the next job held back by flow control may start.
--
-- For a worker whose claim came back short: sleep until this moment (or until a NOTIFY,
-- or the poll interval, whichever comes first), then claim again. It is the earliest
-- time a limit key now held back gets a token again or comes out of a pause; NULL
-- when no key is held back by its rate or pause. A key whose concurrency cap is full
-- is left out, even if its bucket is empty too: it cannot start at its refill time,
-- only once one of its running jobs leaves `processing`, and no clock says when. For
-- a key held back only by its cap this function therefore names no time (NULL if it
-- is the only one); instead, the job leaving processing wakes idle workers with a
-- NOTIFY of its type and voids every claim's "nothing keyed can start" hint (0012), so
-- the next claim of any worker takes the free slot. Reads queue_limits (one row per
-- limited key, no lock) and, for capped keys only, their running count, so it may name
-- the time of a key that has no due job left: the worker then finds nothing and waits
-- again.
CREATE FUNCTION @schema@.next_limited_start()
RETURNS timestamptz
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
  SELECT min(greatest(
           l.paused_until,
           CASE WHEN l.max_per_second IS NOT NULL AND l.tokens < 1
                THEN l.refilled_at + make_interval(secs => ((1 - l.tokens) / l.max_per_second)::double precision)
           END))
  FROM queue_limits l
  WHERE (l.paused_until > now()
         OR (l.max_per_second IS NOT NULL AND l.tokens < 1
             AND l.refilled_at + make_interval(secs => ((1 - l.tokens) / l.max_per_second)::double precision) > now()))
    AND (l.max_concurrent IS NULL OR queue_key_running(l.limit_key, '{}') < l.max_concurrent);
$$;

COMMENT ON FUNCTION @schema@.next_limited_start() IS
  'The earliest time a limit key now held back by its rate or pause (and not by a full concurrency cap) may start a job again; NULL when none is. For workers whose claim came back short.';

GRANT EXECUTE ON FUNCTION @schema@.next_limited_start() TO service_role;
