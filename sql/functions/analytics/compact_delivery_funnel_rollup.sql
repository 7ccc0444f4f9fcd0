-- compact_delivery_funnel_rollup: folds the per-session funnel sums into one row per
-- slice and channel, and the per-session status counts (delivery_status_rollup, 0011)
-- into one row per slice, channel and status.
--
-- delivery_funnel_rollup (0005) keeps one sums row per slice, channel and writing
-- session, so concurrent writers never wait on each other. Sessions come and go (a
-- pool recycling connections leaves rows under many pids), and the rows of a window
-- are what analytics_delivery_funnel reads; this folds every session's row into writer
-- 0. Run it from a scheduler (pg_cron, or any worker) every few minutes to hours:
-- results never depend on it, only the rows a window reads do.
--
-- Guarantees: totals are unchanged for every reader, because the removed rows and the
-- added sums commit together, in one statement. It never waits for a writer: a session
-- row that an open transaction is writing is left for the next run, like a row added
-- meanwhile. One compaction or rebuild at a time (the transaction-level advisory lock
-- keyed on the table, which the rebuild takes too). Returns the funnel sums' session rows
-- folded (the status counts are folded alongside and not counted, so the figure keeps
-- its meaning).
CREATE FUNCTION @schema@.compact_delivery_funnel_rollup()
RETURNS bigint
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = @schema@, pg_temp
AS $$
DECLARE
  v_folded bigint;
  v_status_folded bigint;
BEGIN
  PERFORM pg_advisory_xact_lock('@schema@.delivery_funnel_rollup'::regclass::oid::bigint);
  -- Every row of a slice and channel that has session rows, writer 0's included, is
  -- replaced by one writer-0 row holding their sum (a key deleted and re-inserted in
  -- one statement is no conflict). Rows locked by a writer's open transaction are
  -- skipped, so a compaction never waits for a writer: a callback upserting two sums
  -- rows cannot deadlock with it. Writer-0 rows are only ever locked here and by the
  -- rebuild, which the advisory lock above excludes.
  WITH locked AS (
    SELECT s.slice_start, s.channel, s.writer_pid
    FROM delivery_funnel_rollup s
    WHERE EXISTS (SELECT FROM delivery_funnel_rollup t
                  WHERE t.slice_start = s.slice_start AND t.channel = s.channel
                    AND t.writer_pid <> 0)
    FOR UPDATE SKIP LOCKED
  ),
  folded AS (
    DELETE FROM delivery_funnel_rollup r
    USING locked l
    WHERE (r.slice_start, r.channel, r.writer_pid) = (l.slice_start, l.channel, l.writer_pid)
    RETURNING r.*
  ),
  merged AS (
    INSERT INTO delivery_funnel_rollup
      (slice_start, channel, writer_pid, total_sent, sent, delivered, opened, clicked, failed,
       sent_us_sum, sent_us_count, delivered_us_sum, delivered_us_count)
    SELECT f.slice_start, f.channel, 0, sum(f.total_sent), sum(f.sent), sum(f.delivered),
           sum(f.opened), sum(f.clicked), sum(f.failed), sum(f.sent_us_sum),
           sum(f.sent_us_count), sum(f.delivered_us_sum), sum(f.delivered_us_count)
    FROM folded f
    GROUP BY f.slice_start, f.channel
  )
  SELECT count(*) FILTER (WHERE f.writer_pid <> 0) INTO v_folded FROM folded f;
  -- The status counts, folded the same way for the same reasons.
  WITH locked AS (
    SELECT s.slice_start, s.channel, s.status, s.writer_pid
    FROM delivery_status_rollup s
    WHERE EXISTS (SELECT FROM delivery_status_rollup t
                  WHERE t.slice_start = s.slice_start AND t.channel = s.channel
                    AND t.status = s.status AND t.writer_pid <> 0)
    FOR UPDATE SKIP LOCKED
  ),
  folded AS (
    DELETE FROM delivery_status_rollup r
    USING locked l
    WHERE (r.slice_start, r.channel, r.status, r.writer_pid)
          = (l.slice_start, l.channel, l.status, l.writer_pid)
    RETURNING r.*
  ),
  merged AS (
    INSERT INTO delivery_status_rollup (slice_start, channel, status, writer_pid, deliveries)
    SELECT f.slice_start, f.channel, f.status, 0, sum(f.deliveries)
    FROM folded f
    GROUP BY f.slice_start, f.channel, f.status
    HAVING sum(f.deliveries) <> 0  -- a count that netted to zero is not kept
  )
  SELECT count(*) FILTER (WHERE f.writer_pid <> 0) INTO v_status_folded FROM folded f;
  RAISE DEBUG 'compact_delivery_funnel_rollup: % status count rows folded', v_status_folded;
  RETURN v_folded;
END;
$$;

COMMENT ON FUNCTION @schema@.compact_delivery_funnel_rollup() IS
  'Folds the per-session rows of delivery_funnel_rollup into one row per slice and channel (and those of delivery_status_rollup per slice, channel and status) (totals unchanged, one compaction at a time); returns the rows folded. Schedule it every few minutes to hours.';

GRANT EXECUTE ON FUNCTION @schema@.compact_delivery_funnel_rollup() TO service_role;
