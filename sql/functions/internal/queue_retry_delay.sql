-- queue_retry_delay: how long a failed job waits before its next attempt.
--
-- Exponential backoff with jitter: 10 s * 2^(attempts - 1), capped at 1 hour, then
-- scaled by a random factor in [0.5, 1) so jobs that failed together (a provider
-- outage) do not all retry in the same second. attempts counts the attempt that just
-- failed (1 after the first failure).
CREATE FUNCTION @schema@.queue_retry_delay(p_attempts integer)
RETURNS interval
LANGUAGE sql
VOLATILE
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
  SELECT least(interval '1 hour', interval '10 seconds' * power(2, least(greatest(p_attempts, 1), 20) - 1))
         * (0.5 + random() / 2);
$$;

COMMENT ON FUNCTION @schema@.queue_retry_delay(integer) IS
  'Backoff before retry number p_attempts: 10 s * 2^(p_attempts-1), capped at 1 h, times a jitter factor in [0.5, 1).';

GRANT EXECUTE ON FUNCTION @schema@.queue_retry_delay(integer) TO service_role;
